// SPDX-License-Identifier: CC0-1.0
pragma solidity ^0.8.20;

/// A deposit contract for the tests. It checks what the consensus-specs deposit contract
/// checks: the input lengths, an amount of at least 1 ETH in whole gwei, and deposit_data_root
/// recomputed on chain as the SSZ hash_tree_root of DepositData (sha256); then it logs a
/// DepositEvent with the amount and index as 8 little-endian bytes.
contract TestDepositContract {
    event DepositEvent(bytes pubkey, bytes withdrawal_credentials, bytes amount, bytes signature, bytes index);

    uint64 public depositCount;

    function deposit(
        bytes calldata pubkey,
        bytes calldata withdrawal_credentials,
        bytes calldata signature,
        bytes32 deposit_data_root
    ) external payable {
        require(pubkey.length == 48, "pubkey must be 48 bytes");
        require(withdrawal_credentials.length == 32, "withdrawal_credentials must be 32 bytes");
        require(signature.length == 96, "signature must be 96 bytes");
        require(msg.value >= 1 ether, "deposit below 1 ETH");
        require(msg.value % 1 gwei == 0, "deposit not a multiple of a gwei");
        uint256 amountGwei = msg.value / 1 gwei;
        require(amountGwei <= type(uint64).max, "deposit too large");
        bytes memory amount = littleEndian64(uint64(amountGwei));

        // Bytes48: two 32-byte chunks, the second zero-padded.
        bytes32 pubkeyRoot = sha256(abi.encodePacked(pubkey, bytes16(0)));
        // Bytes96: three chunks, padded to four leaves.
        bytes32 signatureRoot = sha256(
            abi.encodePacked(
                sha256(abi.encodePacked(signature[:64])),
                sha256(abi.encodePacked(signature[64:], bytes32(0)))
            )
        );
        // DepositData: four fields, four leaves; the uint64 amount is one zero-padded chunk.
        bytes32 root = sha256(
            abi.encodePacked(
                sha256(abi.encodePacked(pubkeyRoot, withdrawal_credentials)),
                sha256(abi.encodePacked(amount, bytes24(0), signatureRoot))
            )
        );
        require(root == deposit_data_root, "deposit_data_root does not match the deposit data");

        emit DepositEvent(pubkey, withdrawal_credentials, amount, signature, littleEndian64(depositCount));
        depositCount += 1;
    }

    function littleEndian64(uint64 value) internal pure returns (bytes memory out) {
        out = new bytes(8);
        for (uint256 i = 0; i < 8; i++) {
            out[i] = bytes1(uint8(value >> (8 * i)));
        }
    }
}

/// Refuses every deposit: the "revert" fault.
contract ClosedDepositContract {
    function deposit(bytes calldata, bytes calldata, bytes calldata, bytes32) external payable {
        revert("deposits are closed");
    }
}
