// A store whose secret codec keeps what each openMany returned: the very arrays (to see later
// whether they were handed out, or zeroed) and their hex when they opened. The codec is the
// store's own; only its answers are kept.
import type { StoreContract } from '../../src/store/contract.js';
import type { SecretCodec } from '../../src/store/secret-codec.js';

export const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

export interface Opened {
  readonly arrays: Uint8Array[][];
  readonly hex: string[][];
}

export function watchOpens(store: StoreContract): { store: StoreContract; opened: Opened } {
  const opened: Opened = { arrays: [], hex: [] };
  const codec = store.secrets;
  const secrets: SecretCodec = {
    seal: (secret, pubkey) => codec.seal(secret, pubkey),
    open: (sealed, pubkey) => codec.open(sealed, pubkey),
    openMany: (list) => {
      const out = codec.openMany(list);
      opened.arrays.push(out);
      opened.hex.push(out.map(hex));
      return out;
    },
  };
  const watched = new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === 'secrets') return secrets;
      const value: unknown = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { store: watched, opened };
}
