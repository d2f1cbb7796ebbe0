#!/usr/bin/env python3
"""`biomed-ner render`'s page in a real browser (headless Chromium), Python standard library only.

    tests/browser/render_test.py [--bin PATH] [--keep DIR]

Renders a few notes (entities given, and one note left to the bundled model), loads the page in
headless Chromium and checks, in the page's DOM after its scripts ran:
- one <mark> per entity, each one's text the note's code-point slice [data-start, data-end),
  its background its type's legend colour;
- the type checkboxes and the show/hide-all buttons hide and show highlights (computed styles
  after clicks, run by a test hook appended to a copy of the page);
- the index of the notes (six, more than a page shows without one) linking to each;
- the markup in the notes (a <script> and an <img onerror>, each of which would mark the
  document if run) shown as text and never run;
then takes a screenshot and checks that every legend colour is among its pixels (the PNG is
decoded here with zlib). Exits 1 if any check fails.
Needs: chromium (Debian's package), and the CLI built (default: $CARGO_TARGET_DIR or target,
then release/biomed-ner).
"""
import argparse
import html
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import zlib

PWN = "document.documentElement.setAttribute('data-pwned','{}')"


def note(text, *entities):
    """A note with entities given as (word, type) pairs, each at the word's first occurrence."""
    spans = []
    for word, group in entities:
        start = text.index(word)
        spans.append({"start": start, "end": start + len(word), "entity_group": group, "score": 0.9})
    return {"text": text, "entities": spans}


SCRIPT = f"<script>{PWN.format('script')}</script>"
NOTES = [
    note("She denied fever.\nCough for two days, no chest pain.",
         ("fever", "Sign_symptom"), ("Cough", "Sign_symptom"), ("two days", "Duration"), ("chest pain", "Sign_symptom")),
    note(f"<b>bold</b> {SCRIPT} Chest pain at rest <img src=x onerror=\"{PWN.format('img')}\"> & \"quotes\"",
         ("<b>bold</b>", "Other<b>odd</b>"), ("Chest pain", "Sign_symptom")),
    note("Café \U0001F642 patient,\r\n72 kg, héma\u00adturia.",
         ("patient,\r\n72", "Subject"), ("kg", "Weight"), ("héma\u00adturia", "Sign_symptom")),
    note("Biopsy confirmed SCC of the cervix.", ("Biopsy", "Diagnostic_procedure"), ("SCC", "Disease_disorder")),
    note("Pneumonia could not be excluded.", ("Pneumonia", "Disease_disorder")),
    {"text": "A 65-year-old man presented with dyspnea and was treated with furosemide 40 mg daily."},
]

# Appended to a copy of the page: once it has loaded (after any image's error event), clicks
# the filters and writes what it saw into the DOM.
HOOK = """<script>
window.addEventListener('load',function(){
var marks=[].slice.call(document.querySelectorAll('mark.ent'));
function bg(list){return list.map(function(m){return getComputedStyle(m).backgroundColor;});}
function of(g,yes){return marks.filter(function(m){return (m.getAttribute('data-entity-group')===g)===yes;});}
var r={marks:marks.map(function(m){return {group:m.getAttribute('data-entity-group'),start:+m.getAttribute('data-start'),
  end:+m.getAttribute('data-end'),text:m.textContent,bg:getComputedStyle(m).backgroundColor,note:m.closest('article').id};})};
r.swatches={};
document.querySelectorAll('input[data-group]').forEach(function(c){
  r.swatches[c.getAttribute('data-group')]=getComputedStyle(c.parentNode.querySelector('.biomed-ner-swatch')).backgroundColor;});
var box=document.querySelector('input[data-group="Sign_symptom"]');
box.click();
r.hidden=bg(of('Sign_symptom',true)); r.others=bg(of('Sign_symptom',false));
box.click();
r.shown_again=bg(of('Sign_symptom',true));
document.querySelector('button[data-all="0"]').click(); r.none=bg(marks);
document.querySelector('button[data-all="1"]').click(); r.all=bg(marks);
r.pwned=document.documentElement.getAttribute('data-pwned');
r.index=[].map.call(document.querySelectorAll('nav.index a'),function(a){
  var t=document.getElementById(a.getAttribute('href').slice(1));return t?t.querySelector('h2').textContent:null;});
var pre=document.createElement('pre'); pre.id='test-result'; pre.textContent=JSON.stringify(r);
document.body.appendChild(pre);
});
</script>
"""

failures, passed = [], []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what)
    (passed if ok else failures).append(what)


def chromium(*args):
    with tempfile.TemporaryDirectory() as profile:
        cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--force-color-profile=srgb", "--force-device-scale-factor=1", "--hide-scrollbars",
               f"--user-data-dir={profile}", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout


def png_pixels(path):
    """The set of (r, g, b) colours of an 8-bit RGB or RGBA PNG, not interlaced."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    bpp = 3 if colour == 2 else 4
    stride = width * bpp
    prev = bytearray(stride)
    colours = set()
    for y in range(height):
        filt = raw[y * (stride + 1)]
        row = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = row[i - bpp] if i >= bpp else 0
            b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
            if filt == 1:
                row[i] = (row[i] + a) & 255
            elif filt == 2:
                row[i] = (row[i] + b) & 255
            elif filt == 3:
                row[i] = (row[i] + (a + b) // 2) & 255
            elif filt == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        colours.update(zip(row[0::bpp], row[1::bpp], row[2::bpp]))
        prev = row
    return colours


def rgb(css):
    return tuple(int(x) for x in re.findall(r"\d+", css)[:3])


def main():
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=os.path.join(target, "release", "biomed-ner"))
    ap.add_argument("--keep", help="folder to leave the page, the hooked page and the screenshot in")
    args = ap.parse_args()
    work = args.keep or tempfile.mkdtemp(prefix="biomed-ner-render-")
    os.makedirs(work, exist_ok=True)
    lines = "".join(json.dumps(n) + "\n" for n in NOTES)
    page = subprocess.run([args.bin, "render", "--assertion"], input=lines, capture_output=True,
                          text=True, check=True).stdout
    # What the model finds on the note without entities, by the same binary.
    found = subprocess.run([args.bin], input=json.dumps(NOTES[-1]) + "\n", capture_output=True,
                           text=True, check=True).stdout
    notes = [dict(n) for n in NOTES]
    notes[-1]["entities"] = json.loads(found)
    check(len(notes[-1]["entities"]) >= 3, f"the model found {len(notes[-1]['entities'])} entities in the last note")
    page_path = os.path.join(work, "page.html")
    hooked_path = os.path.join(work, "hooked.html")
    open(page_path, "w").write(page)
    open(hooked_path, "w").write(page.replace("</body>", HOOK + "</body>"))

    dom = chromium("--virtual-time-budget=5000", "--dump-dom", "file://" + hooked_path)
    m = re.search(r'<pre id="test-result">(.*?)</pre>', dom, re.S)
    check(m is not None, "the page's scripts ran (the test hook wrote its result)")
    if m is None:
        sys.exit(f"render_test: {len(passed)} passed, {len(failures)} failed")
    r = json.loads(html.unescape(m.group(1)))

    want = sum(len(n["entities"]) for n in notes)
    check(len(r["marks"]) == want, f"{len(r['marks'])} entity elements for {want} entities")
    slices_ok = all(
        mk["text"] == notes[int(mk["note"].split("-")[1]) - 1]["text"][mk["start"]:mk["end"]] for mk in r["marks"])
    check(slices_ok, "each element's text is its note's slice by data-start and data-end")
    given = sorted((e["start"], e["end"], e["entity_group"]) for e in notes[1]["entities"])
    got = sorted((mk["start"], mk["end"], mk["group"]) for mk in r["marks"] if mk["note"] == "note-2")
    check(got == given, "the note with markup has its two entities, the odd type name intact")
    check(all(mk["bg"] == r["swatches"][mk["group"]] for mk in r["marks"]), "each highlight has its legend colour")
    check(len(set(r["swatches"].values())) == len(r["swatches"]), f"{len(r['swatches'])} types, as many colours")
    clear = "rgba(0, 0, 0, 0)"
    check(r["hidden"] and all(c == clear for c in r["hidden"]), "clearing Sign_symptom's box hides its highlights")
    check(r["others"] and all(c != clear for c in r["others"]), "... and leaves the other types' highlights")
    check(r["shown_again"] and all(c != clear for c in r["shown_again"]), "checking it again shows them")
    check(all(c == clear for c in r["none"]) and all(c != clear for c in r["all"]), "hide all, then show all")
    want_index = [f"Note {i}" for i in range(1, len(notes) + 1)]
    check(r["index"] == want_index, f"the index links to each of the {len(notes)} notes")
    root = re.search(r"<html[^>]*>", dom)
    check(r["pwned"] is None and root and "data-pwned" not in root.group(0), "the notes' <script> and onerror did not run")
    check(SCRIPT not in dom and "&lt;script&gt;" in dom and "&lt;b&gt;bold" in dom, "the notes' markup is text")

    shot = os.path.join(work, "page.png")
    chromium("--window-size=1000,1200", f"--screenshot={shot}", "file://" + page_path)
    pixels = png_pixels(shot)
    missing = [g for g, c in r["swatches"].items() if rgb(c) not in pixels]
    check(not missing, f"the screenshot shows all {len(r['swatches'])} legend colours" + (f" (missing: {missing})" if missing else ""))
    check(len(pixels) > 50, f"the screenshot has {len(pixels)} colours")

    print(f"files in {work}")
    print(f"render_test: {len(passed)} passed, {len(failures)} failed")
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
