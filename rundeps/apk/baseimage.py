"""What every ``alpine`` image has besides musl."""

from __future__ import annotations

from typing import Dict

BASE_IMAGE_SONAMES: Dict[str, str] = {
    "libz.so.1": "zlib",
    "libcrypto.so.3": "libcrypto3",
    "libssl.so.3": "libssl3",
}
"""Libraries every ``alpine`` image since 3.17 has besides musl (apk-tools
needs them): a wheel may need these and still need nothing beyond the base
image. Package names as Alpine gives them."""
