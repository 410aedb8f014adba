import { describe, expect, it } from 'vitest';
import { parseDepositSettings } from '../../src/deposit/config.js';

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

  it.each([
    [{ network: 'hoodi' }, false, /--withdrawal-address .* or --mnemonic-file/],
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
