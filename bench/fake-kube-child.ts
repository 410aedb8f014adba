// A fake Kubernetes API (test/kube/fake-api.ts) in its own process, as the API server is in a
// cluster: its work does not count against the server measured. Issues a token for each pod
// named on the command line (prefix:count), and prints {url, tokens} as one JSON line.
import { FakeKubeApi } from '../test/kube/fake-api.js';

const api = new FakeKubeApi();
await api.start();
const tokens: Record<string, string> = {};
for (const arg of process.argv.slice(2)) {
  const [prefix, count] = arg.split(':');
  for (let i = 0; i < Number(count); i++) {
    const pod = `${prefix}-${i}`;
    tokens[pod] = api.issueToken('default', pod);
  }
}
process.stdout.write(
  `${JSON.stringify({ url: api.url, kubeconfig: api.kubeconfigYaml(), tokens })}\n`,
);
process.once('SIGTERM', () => {
  void api.stop().then(() => process.exit(0));
});
