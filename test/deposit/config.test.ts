import { describe, expect, it } from 'vitest';
import { parseDepositSettings } from '../../src/deposit/config.js';
import { NETWORKS } from '../../src/deposit/networks.js';
import { parseServerConfig } from '../../src/server/config.js';

const ADDRESS = '0xf93ee4cf8c6c40b329b0c0626f28333c132cf241';

describe('deposit flags', () => {
  it('makes no deposit data without --network', () => {
    expect(parseDepositSettings({}, false)).toBeUndefined();
  });

  it('takes a known network with its fork version, chain id and contract', () => {
    const s = parseDepositSettings({ network: 'hoodi', withdrawalAddress: ADDRESS }, false);
    expect(s).toMatchObject({
      mode: 'record',
      amountGwei: 32e9,
      network: { forkVersion: '0x10000910', chainId: 560048n },
    });
  });

  it('--network alone names the chain and makes no deposit data (no withdrawal credentials)', () => {
    expect(parseDepositSettings({ network: 'hoodi' }, false)).toBeUndefined();
    const config = parseServerConfig({ network: 'hoodi' });
    expect(config.deposits).toBeUndefined();
    expect(config.network?.name).toBe('hoodi');
    expect(config.genesisValidatorsRoot).toBe(NETWORKS.hoodi.genesisValidatorsRoot);
  });

  it.each([
    [
      { network: 'hoodi', depositMode: 'record' },
      false,
      /--withdrawal-address .* or --mnemonic-file/,
    ],
    [{ network: 'moon', withdrawalAddress: ADDRESS }, false, /--network is one of/],
    [{ network: 'custom', withdrawalAddress: ADDRESS }, false, /--fork-version/],
    [
      { network: 'custom', withdrawalAddress: ADDRESS, forkVersion: '0x10000910' },
      false,
      /--chain-id/,
    ],
    [
      { network: 'custom', withdrawalAddress: ADDRESS, forkVersion: '0x10000910', chainId: '5' },
      false,
      /--deposit-contract/,
    ],
    [{ network: 'hoodi', compounding: true }, true, /--compounding needs --withdrawal-address/],
    [
      { network: 'hoodi', withdrawalAddress: ADDRESS, depositAmountGwei: '33000000000' },
      false,
      /from 1 to 32 ETH/,
    ],
    [
      {
        network: 'hoodi',
        withdrawalAddress: ADDRESS,
        compounding: true,
        depositAmountGwei: '31000000000',
      },
      false,
      /from 32 to 2048 ETH/,
    ],
    [
      { network: 'hoodi', withdrawalAddress: '0xF93ee4cf8c6c40b329b0c0626f28333c132cf241' },
      false,
      /EIP-55/,
    ],
    [{ depositMode: 'send' }, false, /needs --network/],
    [{ network: 'hoodi', withdrawalAddress: ADDRESS, depositMode: 'send' }, false, /--eth-rpc/],
    [
      {
        network: 'hoodi',
        withdrawalAddress: ADDRESS,
        depositMode: 'send',
        ethRpc: 'http://127.0.0.1:8545',
      },
      false,
      /--funder-key-file/,
    ],
    [
      { network: 'hoodi', withdrawalAddress: ADDRESS, depositMode: 'fast' },
      false,
      /record or send/,
    ],
  ])('refuses %j', (flags, hasMnemonic, message) => {
    expect(() => parseDepositSettings(flags, hasMnemonic)).toThrow(message);
  });

  it('allows up to 2048 ETH with --compounding, and 0x00 credentials with a mnemonic', () => {
    expect(
      parseDepositSettings(
        {
          network: 'mainnet',
          withdrawalAddress: ADDRESS,
          compounding: true,
          depositAmountGwei: '2048000000000',
        },
        false,
      ),
    ).toMatchObject({
      amountGwei: 2048e9,
      credentials: { type: 'execution', compounding: true },
    });
    expect(parseDepositSettings({ network: 'mainnet' }, true)).toMatchObject({
      credentials: { type: 'bls' },
    });
  });
});

const CUSTOM = {
  network: 'custom',
  forkVersion: '0x10000910',
  chainId: '31337',
  depositContract: '0x4242424242424242424242424242424242424242',
};
const ROOT = `0x${'5e'.repeat(32)}`;

describe('the genesis root (--network, --genesis-validators-root)', () => {
  it("takes a known network's root, or the flag for a custom network or none", () => {
    expect(parseServerConfig({ network: 'mainnet' }).genesisValidatorsRoot).toBe(
      NETWORKS.mainnet.genesisValidatorsRoot,
    );
    const custom = parseServerConfig({ ...CUSTOM, genesisValidatorsRoot: `0x${'5E'.repeat(32)}` });
    // Lowercase, and on the network too: the liveness gate checks its node against it.
    expect(custom.genesisValidatorsRoot).toBe(ROOT);
    expect(custom.network?.genesisValidatorsRoot).toBe(ROOT);
    expect(parseServerConfig({ genesisValidatorsRoot: ROOT }).genesisValidatorsRoot).toBe(ROOT);
    expect(parseServerConfig({ ...CUSTOM }).genesisValidatorsRoot).toBeUndefined();
    expect(parseServerConfig({}).genesisValidatorsRoot).toBeUndefined();
    // A known network's own root may be repeated.
    const hoodi = NETWORKS.hoodi.genesisValidatorsRoot ?? '';
    expect(
      parseServerConfig({ network: 'hoodi', genesisValidatorsRoot: hoodi }).genesisValidatorsRoot,
    ).toBe(hoodi);
  });

  it.each([
    [
      { genesisValidatorsRoot: '0x1234' },
      /--genesis-validators-root takes 32 bytes as 0x and 64 hex/,
    ],
    [{ genesisValidatorsRoot: '5e'.repeat(32) }, /--genesis-validators-root takes 32 bytes/],
    [
      { network: 'hoodi', genesisValidatorsRoot: ROOT },
      new RegExp(
        `--genesis-validators-root ${ROOT} contradicts --network hoodi, whose root is ${NETWORKS.hoodi.genesisValidatorsRoot}`,
      ),
    ],
  ])('refuses %j', (flags, message) => {
    expect(() => parseServerConfig(flags)).toThrow(message);
  });
});
