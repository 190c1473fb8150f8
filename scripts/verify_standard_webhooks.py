"""Verifies a captured delivery with the official `standardwebhooks` library, as a
receiver would. Run by scripts/verify-standard-webhooks.sh (which installs the library);
exits 0 when it verifies, 1 when the library rejects it."""

import json
import sys

import standardwebhooks
from standardwebhooks import Webhook, WebhookVerificationError


def main() -> int:
    version, path = sys.argv[1], sys.argv[2]
    # The pinned copy, not one that happened to be installed elsewhere.
    if standardwebhooks.__version__ != version:
        print(f"standardwebhooks {standardwebhooks.__version__} imported, {version} expected",
              file=sys.stderr)
        return 2
    with open(path, encoding="utf-8") as f:
        delivery = json.load(f)
    secret = delivery["secret"]
    # whsec_<base64> is the library's own form; any other secret is the HMAC key as it
    # is, which the library takes as bytes.
    webhook = Webhook(secret.encode() if delivery["format"] == "raw" else secret)
    try:
        # The body as received, before any parsing; verify() parses it after.
        webhook.verify(delivery["body"].encode(), delivery["headers"])
    except WebhookVerificationError as e:
        print(f"rejected: {e}")
        return 1
    print(f"verified with standardwebhooks {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
