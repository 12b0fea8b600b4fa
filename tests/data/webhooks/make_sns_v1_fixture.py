#!/usr/bin/env python3
"""Writes ses-complaint-v1.json: an SNS notification carrying an SES
complaint, signed with SignatureVersion 1 (SHA1withRSA) by the throwaway
test key beside this script. The Rust tests sign SignatureVersion 2 messages
themselves (ring can sign SHA-256 but not SHA-1), so this fixture, made by
an independent implementation of the string to sign, covers version 1.

Needs the `cryptography` package. Run from this directory:
    python3 make_sns_v1_fixture.py
"""
import base64
import json

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

message = json.dumps(
    {
        "notificationType": "Complaint",
        "complaint": {
            "complainedRecipients": [{"emailAddress": "complainer@example.org"}],
            "timestamp": "2026-11-29T07:00:00.000Z",
            "feedbackId": "0100018c-test-complaint",
            "userAgent": "ExampleMail/1.0",
            "complaintFeedbackType": "abuse",
            "arrivalDate": "2026-11-29T06:59:00.000Z",
        },
        "mail": {
            "timestamp": "2026-11-29T06:58:00.000Z",
            "source": "whatsup@news.example.com",
            "messageId": "0100018c-test-mail",
            "destination": ["complainer@example.org"],
            "commonHeaders": {"messageId": "<no-such-message@news.example.com>"},
        },
    },
    separators=(",", ":"),
)
envelope = {
    "Type": "Notification",
    "MessageId": "5f6e0a38-0000-4000-8000-00000000v1v1",
    "TopicArn": "arn:aws:sns:test-region-1:123456789012:whatsup-ses",
    "Message": message,
    "Timestamp": "2026-11-29T07:00:01.000Z",
    "SignatureVersion": "1",
    "SigningCertURL": "https://sns.test-region-1.amazonaws.test/SimpleNotificationService-test.pem",
    "UnsubscribeURL": "https://sns.test-region-1.amazonaws.test/?Action=Unsubscribe",
}
to_sign = "".join(
    f"{k}\n{envelope[k]}\n"
    for k in ["Message", "MessageId", "Timestamp", "TopicArn", "Type"]
)
with open("sns-test-key.pem", "rb") as f:
    key = serialization.load_pem_private_key(f.read(), password=None)
signature = key.sign(to_sign.encode(), padding.PKCS1v15(), hashes.SHA1())
envelope["Signature"] = base64.b64encode(signature).decode()
with open("ses-complaint-v1.json", "w") as f:
    json.dump(envelope, f, indent=2)
    f.write("\n")
