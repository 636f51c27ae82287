"""The callback crypto against the two known-answer vectors (PROTOCOLS.md §A.6) and against
wechatpy, the independent peer, in both directions."""

from __future__ import annotations

import base64
import struct
import xml.etree.ElementTree as ET

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from wechatpy.enterprise.crypto import WeChatCrypto  # type: ignore[import-untyped]

from guanxi.plugins.wecom.crypto import CryptoError, ReceiveIdError, SignatureError, WecomCrypto, aes_key, pad, signature, unpad

VECTORS = [
    (
        "QDG6eK",
        "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
        "wx5823bf96d3bd56c7",
        "1409659589",
        "263014780",
        "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==",
        "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
        "1616140317555161061",
    ),
    (
        "123456",
        "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR",
        "wx49f0ab532d5d035a",
        "1411443780",
        "437374425",
        "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q==",
        "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96",
        "5927782489442352469",
    ),
]


@pytest.mark.parametrize(("token", "key", "corp", "ts", "nonce", "echostr", "sig", "plain"), VECTORS)
def test_known_answer_vectors_give_the_documented_signature_and_plaintext(
    token: str, key: str, corp: str, ts: str, nonce: str, echostr: str, sig: str, plain: str
) -> None:
    assert signature(token, ts, nonce, echostr) == sig
    assert WecomCrypto(token, key, corp).verify_and_decrypt(sig, ts, nonce, echostr) == plain


@pytest.mark.parametrize("size", [0, 1, 11, 12, 31, 32, 44, 100, 4000])
def test_what_we_encrypt_wechatpy_decrypts_at_every_padding_length(size: int) -> None:
    """Sizes around 32-byte boundaries (16 random + 4 length + msg + 18-byte corp id)."""
    corp, token, key = "wx49f0ab532d5d035a", "123456", VECTORS[1][1]
    ours = WecomCrypto(token, key, corp)
    msg = "<xml><Content>" + "汉" * (size // 3) + "x" * (size % 3) + "</Content></xml>"
    reply = ours.reply(msg, "1411443780", "437374425")
    sig = ET.fromstring(reply).findtext("MsgSignature")
    assert WeChatCrypto(token, key, corp).decrypt_message(reply, sig, "1411443780", "437374425") == msg


@pytest.mark.parametrize("size", [0, 12, 31, 32, 33, 500])
def test_what_wechatpy_encrypts_we_verify_and_decrypt(size: int) -> None:
    corp, token, key = "wx49f0ab532d5d035a", "123456", VECTORS[1][1]
    msg = "<xml><A>" + "y" * size + "</A></xml>"
    peer = WeChatCrypto(token, key, corp).encrypt_message(msg, "999", "1411443780")
    root = ET.fromstring(peer)

    encrypt, sig = root.findtext("Encrypt") or "", root.findtext("MsgSignature") or ""
    assert WecomCrypto(token, key, corp).verify_and_decrypt(sig, "1411443780", "999", encrypt) == msg


def test_a_full_block_of_padding_is_added_to_a_multiple_of_32_and_accepted() -> None:
    assert pad(b"a" * 32)[-32:] == bytes([32]) * 32
    assert unpad(pad(b"a" * 32)) == b"a" * 32
    assert unpad(b"b" * 31 + b"\x01") == b"b" * 31


def _raw_encrypt(key: str, plain: bytes) -> str:
    raw_key = aes_key(key)
    encryptor = Cipher(algorithms.AES(raw_key), modes.CBC(raw_key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


def test_bad_padding_is_refused() -> None:
    corp, token, key = "wx49f0ab532d5d035a", "123456", VECTORS[1][1]
    body = b"r" * 16 + struct.pack(">I", 3) + b"abc" + corp.encode()
    for bad_tail in (b"\x00" * 23, b"\x21" * 23, b"\x05" * 22 + b"\x09"):  # pad byte 0, 33 (> 32), inconsistent
        plain = body + bad_tail
        assert len(plain) % 16 == 0
        cipher = _raw_encrypt(key, plain)
        with pytest.raises(CryptoError):
            WecomCrypto(token, key, corp).decrypt(cipher)


def test_a_message_for_another_corp_is_refused() -> None:
    token, key = "123456", VECTORS[1][1]
    other = WecomCrypto(token, key, "wwOTHERCORP").encrypt("<xml/>")
    with pytest.raises(ReceiveIdError):
        WecomCrypto(token, key, "wx49f0ab532d5d035a").decrypt(other)


def test_a_bad_signature_is_refused_before_decryption() -> None:
    token, key, corp, ts, nonce, echostr, sig, _ = VECTORS[0]
    with pytest.raises(SignatureError):
        WecomCrypto(token, key, corp).verify_and_decrypt(sig.replace("5", "6"), ts, nonce, echostr)
    with pytest.raises(SignatureError):
        WecomCrypto(token, key, corp).verify_and_decrypt("", ts, nonce, echostr)


@pytest.mark.parametrize("bad", ["short", "x" * 44, "!" * 43, ""])
def test_an_encoding_aes_key_that_is_not_43_alphanumerics_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="43 characters"):
        aes_key(bad)


def test_the_crypto_object_does_not_show_its_secrets() -> None:
    token, key, corp = VECTORS[0][:3]
    text = repr(WecomCrypto(token, key, corp))
    assert token not in text and key not in text and corp in text
