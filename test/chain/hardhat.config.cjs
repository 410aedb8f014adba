// The local EVM for the deposit tests: `hardhat node` on 127.0.0.1, started by test/chain/node.ts.
module.exports = {
  networks: { hardhat: { chainId: 31337, mining: { auto: true } } },
};
