#!/usr/bin/env python3
"""Builds the flat OpenDocument spreadsheet (FODS) for price-list.xlsx from the three CSV
files beside this script, one sheet each. make-documents.sh then converts it with LibreOffice.

Usage: build_fods.py OUTPUT.fods
"""
import csv
import sys
from pathlib import Path
from xml.sax.saxutils import escape

HERE = Path(__file__).resolve().parent
SHEETS = [
    ("Beans", "price-list-beans.csv"),
    ("Equipment", "price-list-equipment.csv"),
    ("Subscriptions", "price-list-subscriptions.csv"),
]
# Columns whose values are numbers, and the number style they get.
NUMBER_STYLE = {
    "Price (IDR)": "ceIDR",
    "Price per month (IDR)": "ceIDR",
    "Price (USD)": "ceUSD",
    "Price per month (USD)": "ceUSD",
    "Warranty (months)": "ceInt",
    "Deliveries per month": "ceInt",
}
WIDE = {"Product", "Item", "Plan", "Tasting notes", "Each delivery contains", "Available for", "Origin"}

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<office:document xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"
 xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0"
 xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"
 xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0"
 xmlns:number="urn:oasis:names:tc:opendocument:xmlns:datastyle:1.0"
 xmlns:fo="urn:oasis:names:tc:opendocument:xmlns:xsl-fo-compatible:1.0"
 xmlns:dc="http://purl.org/dc/elements/1.1/"
 xmlns:meta="urn:oasis:names:tc:opendocument:xmlns:meta:1.0"
 office:version="1.3" office:mimetype="application/vnd.oasis.opendocument.spreadsheet">
 <office:meta>
  <dc:title>Seduh Sendiri price list</dc:title>
 </office:meta>
 <office:automatic-styles>
  <number:number-style style:name="nIDR">
   <number:currency-symbol>Rp</number:currency-symbol><number:text> </number:text>
   <number:number number:decimal-places="0" number:min-decimal-places="0" number:min-integer-digits="1" number:grouping="true"/>
  </number:number-style>
  <number:number-style style:name="nUSD">
   <number:number number:decimal-places="2" number:min-decimal-places="2" number:min-integer-digits="1"/>
  </number:number-style>
  <number:number-style style:name="nInt">
   <number:number number:decimal-places="0" number:min-decimal-places="0" number:min-integer-digits="1"/>
  </number:number-style>
  <style:style style:name="coWide" style:family="table-column">
   <style:table-column-properties style:column-width="6.2cm"/>
  </style:style>
  <style:style style:name="coNarrow" style:family="table-column">
   <style:table-column-properties style:column-width="3.3cm"/>
  </style:style>
  <style:style style:name="ceHead" style:family="table-cell">
   <style:table-cell-properties fo:background-color="#e8dccb"/>
   <style:text-properties fo:font-weight="bold"/>
  </style:style>
  <style:style style:name="ceIDR" style:family="table-cell" style:data-style-name="nIDR"/>
  <style:style style:name="ceUSD" style:family="table-cell" style:data-style-name="nUSD"/>
  <style:style style:name="ceInt" style:family="table-cell" style:data-style-name="nInt"/>
 </office:automatic-styles>
 <office:body>
  <office:spreadsheet>
"""
TAIL = """  </office:spreadsheet>
 </office:body>
</office:document>
"""


def text_cell(value, style=None):
    attr = f' table:style-name="{style}"' if style else ""
    return (f'<table:table-cell{attr} office:value-type="string">'
            f"<text:p>{escape(value)}</text:p></table:table-cell>")


def cell(header, value):
    if value == "":
        return "<table:table-cell/>"
    style = NUMBER_STYLE.get(header)
    if style:
        number = float(value)
        shown = f"{number:.2f}" if style == "ceUSD" else f"{number:.0f}"
        return (f'<table:table-cell table:style-name="{style}" office:value-type="float" '
                f'office:value="{value}"><text:p>{shown}</text:p></table:table-cell>')
    return text_cell(value)


def sheet(name, path):
    with open(HERE / path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    out = [f'   <table:table table:name="{escape(name)}">']
    for h in header:
        out.append(f'    <table:table-column table:style-name="{"coWide" if h in WIDE else "coNarrow"}"/>')
    out.append("    <table:table-row>" + "".join(text_cell(h, "ceHead") for h in header) + "</table:table-row>")
    for row in body:
        if len(row) != len(header):
            sys.exit(f"{path}: row {row[0]!r} has {len(row)} cells, the header has {len(header)}")
        out.append("    <table:table-row>" + "".join(cell(h, v) for h, v in zip(header, row)) + "</table:table-row>")
    out.append("   </table:table>")
    return "\n".join(out) + "\n"


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    body = "".join(sheet(name, path) for name, path in SHEETS)
    Path(sys.argv[1]).write_text(HEAD + body + TAIL, encoding="utf-8")


if __name__ == "__main__":
    main()
