#!/usr/bin/env python3
"""Checks questions.json against the documents of the retrieval-evaluation set.

For every relevance label it verifies that `contains` occurs exactly once in the text of the
labelled file, after whitespace is collapsed:

- .md files: the file's own text;
- .pdf files: `pdftotext` output, in both reading order and -layout mode (a phrase has to
  survive both, so it cannot rely on how one extractor orders table cells or wraps lines);
- .xlsx files: the cell values, read from the sheet XML inside the zip; `contains` must also
  lie inside a single cell, so it names one row.

It also checks the shape of the file: unique ids q001, q002, ...; lang en/id/nl; a kind;
grades 1 or 2 with at least one grade 2 per question; 4-12 words for phrases from Markdown and
PDF files. It prints the question mix and exits non-zero on any problem.

Standard library only, plus pdftotext (poppler-utils).

Usage: check.py [--verbose]
"""
import collections
import json
import re
import subprocess
import sys
import unicodedata
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DOCS = HERE / "documents"
QUESTIONS = HERE / "questions.json"
LANGS = {"en", "id", "nl"}
KINDS = {"keyword", "paraphrase", "table", "cross-lingual"}
# The language each document is written in (the spreadsheet's headers and names are English).
FILE_LANG = {
    "faq-en.md": "en",
    "faq-id.md": "id",
    "shipping-returns-policy.pdf": "en",
    "kebijakan-garansi.pdf": "id",
    "price-list.xlsx": "en",
}
NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def norm(text):
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip()


def pdf_texts(path):
    texts = []
    for mode in ([], ["-layout"]):
        out = subprocess.run(["pdftotext", *mode, "-enc", "UTF-8", str(path), "-"],
                             check=True, capture_output=True, text=True).stdout
        texts.append(norm(out))
    return texts


def xlsx_cells(path):
    """Every cell value as text, as (sheet, row number, value)."""
    cells = []
    with zipfile.ZipFile(path) as z:
        shared = []
        if "xl/sharedStrings.xml" in z.namelist():
            root = ET.fromstring(z.read("xl/sharedStrings.xml"))
            for si in root.findall("m:si", NS):
                shared.append("".join(t.text or "" for t in si.iter(f"{{{NS['m']}}}t")))
        book = ET.fromstring(z.read("xl/workbook.xml"))
        rels = ET.fromstring(z.read("xl/_rels/workbook.xml.rels"))
        targets = {r.get("Id"): r.get("Target") for r in rels}
        for sheet in book.find("m:sheets", NS):
            target = targets[sheet.get(f"{{{REL_NS}}}id")].lstrip("/")
            if not target.startswith("xl/"):
                target = "xl/" + target
            root = ET.fromstring(z.read(target))
            for row in root.iter(f"{{{NS['m']}}}row"):
                for c in row.findall("m:c", NS):
                    v = c.find("m:v", NS)
                    if c.get("t") == "s" and v is not None:
                        value = shared[int(v.text)]
                    elif c.get("t") == "inlineStr":
                        value = "".join(t.text or "" for t in c.iter(f"{{{NS['m']}}}t"))
                    elif v is not None:
                        value = v.text or ""
                    else:
                        continue
                    cells.append((sheet.get("name"), int(row.get("r")), norm(value)))
    return cells


class Corpus:
    def __init__(self):
        self.cache = {}

    def texts(self, name):
        """The normalized texts a phrase must occur in exactly once (one per extraction)."""
        if name not in self.cache:
            path = DOCS / name
            if path.suffix == ".md":
                self.cache[name] = [norm(path.read_text(encoding="utf-8"))]
            elif path.suffix == ".pdf":
                self.cache[name] = pdf_texts(path)
            elif path.suffix == ".xlsx":
                cells = xlsx_cells(path)
                self.cache[name] = [" | ".join(v for _, _, v in cells)]
                self.cache[name + "#cells"] = cells
            else:
                raise ValueError(f"unsupported file type: {name}")
        return self.cache[name]


def main():
    verbose = "--verbose" in sys.argv
    data = json.loads(QUESTIONS.read_text(encoding="utf-8"))
    questions = data["questions"]
    corpus = Corpus()
    problems = []
    labels = 0
    by_lang = collections.Counter()
    by_kind = collections.Counter()
    by_lang_kind = collections.Counter()
    by_file = collections.Counter()
    seen_ids = set()
    failed_labels = 0
    same_lang_answered = collections.Counter()

    for n, q in enumerate(questions, 1):
        qid = q.get("id")
        where = f"{qid}"
        if qid != f"q{n:03d}":
            problems.append(f"{where}: id should be q{n:03d}")
        if qid in seen_ids:
            problems.append(f"{where}: duplicate id")
        seen_ids.add(qid)
        if q.get("lang") not in LANGS:
            problems.append(f"{where}: lang {q.get('lang')!r} is not one of {sorted(LANGS)}")
        if q.get("kind") not in KINDS:
            problems.append(f"{where}: kind {q.get('kind')!r} is not one of {sorted(KINDS)}")
        if not q.get("question", "").strip():
            problems.append(f"{where}: empty question")
        by_lang[q.get("lang")] += 1
        by_kind[q.get("kind")] += 1
        by_lang_kind[(q.get("lang"), q.get("kind"))] += 1
        relevant = q.get("relevant") or []
        if not any(r.get("grade") == 2 for r in relevant):
            problems.append(f"{where}: no grade-2 passage")
        same_lang = any(FILE_LANG.get(r.get("file")) == q.get("lang")
                        for r in relevant if r.get("grade") == 2)
        if same_lang:
            same_lang_answered[q.get("lang")] += 1
        if q.get("kind") == "cross-lingual" and same_lang:
            problems.append(f"{where}: cross-lingual, but a grade-2 passage is in the question's language")
        if q.get("kind") in ("keyword", "paraphrase") and not same_lang:
            problems.append(f"{where}: {q.get('kind')}, but no grade-2 passage is in the question's "
                            "language (call it cross-lingual)")
        pairs = set()
        for r in relevant:
            before = len(problems)
            name, phrase, grade = r.get("file"), r.get("contains", ""), r.get("grade")
            labels += 1
            by_file[name] += 1
            label = f"{where} [{name}] {phrase!r}"
            if (name, phrase) in pairs:
                problems.append(f"{label}: listed twice")
            pairs.add((name, phrase))
            if grade not in (1, 2):
                problems.append(f"{label}: grade must be 1 or 2")
            if name not in FILE_LANG:
                problems.append(f"{label}: not a document of the set (see FILE_LANG)")
                continue
            if not (DOCS / name).is_file():
                problems.append(f"{label}: no such document")
                continue
            needle = norm(phrase)
            words = len(needle.split())
            if not name.endswith(".xlsx") and not 4 <= words <= 12:
                problems.append(f"{label}: {words} words, expected 4-12")
            for i, text in enumerate(corpus.texts(name)):
                count = text.count(needle)
                if count != 1:
                    mode = ["text", "layout text"][i] if name.endswith(".pdf") else "text"
                    problems.append(f"{label}: found {count} times in the {mode}")
            if name.endswith(".xlsx"):
                rows = {(s, row) for s, row, v in corpus.cache[name + "#cells"] if needle in v}
                if len(rows) != 1:
                    problems.append(f"{label}: inside a cell of {len(rows)} rows, expected 1")
            if len(problems) > before:
                failed_labels += 1
            elif verbose:
                print(f"ok {label} grade {grade}")

    print(f"{len(questions)} questions, {labels} relevance labels")
    print("per language: " + ", ".join(f"{k} {v}" for k, v in sorted(by_lang.items())))
    print("per kind:     " + ", ".join(f"{k} {v}" for k, v in sorted(by_kind.items())))
    for lang in sorted(by_lang):
        row = ", ".join(f"{k} {by_lang_kind[(lang, k)]}" for k in sorted(KINDS) if by_lang_kind[(lang, k)])
        print(f"  {lang}: {row}")
    print("answered only in another language: " + ", ".join(
        f"{k} {by_lang[k] - same_lang_answered[k]}" for k in sorted(by_lang)))
    print("labels per file: " + ", ".join(f"{k} {v}" for k, v in sorted(by_file.items())))
    for p in problems:
        print("FAIL " + p)
    print(f"labels: {labels - failed_labels} passed, {failed_labels} failed")
    if problems:
        print(f"{len(problems)} problem(s)")
        sys.exit(1)


if __name__ == "__main__":
    main()
