"""Draw the GLVD sidebar panel as an image, from the panel's own draw() calls.

    python scripts/draw_panel.py docs/results/panel.png [--photo docs/examples/astronaut.png]

Not a screenshot: the ``bpy`` module draws no UI (``bpy.ops.screen.screenshot`` fails its poll
there). The panel's ``draw()`` runs against ``blender_tests/ui_recorder.RecordingLayout`` — the
recorder the tests use, which checks each call against Blender's UILayout RNA — after a real
reconstruction of ``--photo`` with the bundled model, and each recorded element (checkbox, number
field, menu, path field, button, list) is drawn in the colours of Blender's default theme. The
labels, values, order, nesting and greyed-out state are the panel's; pixel metrics are not.
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "blender_tests")]

BG, PANEL, HEADER = (48, 48, 48), (61, 61, 61), (43, 43, 43)
FIELD, BUTTON, CHECK_ON, LIST_BG, ACTIVE_ROW = (29, 29, 29), (84, 84, 84), (71, 114, 179), (34, 34, 34), (52, 78, 122)
TEXT, DIM, OK, ERR = (230, 230, 230), (128, 128, 128), (110, 200, 110), (230, 110, 90)
GLYPH = {"ADD": "+", "REMOVE": "−", "CHECKMARK": "✓", "ERROR": "⚠", "IMAGE_DATA": "▣", "MOD_MASK": "◐",
         "EXPORT": "⇧", "USER": "☺"}
ROW, GAP, PAD, U = 20, 3, 8, 2  # logical pixels; U = output pixels per logical pixel


class Painter:
    def __init__(self, width, height):
        from matplotlib import font_manager
        from PIL import Image, ImageDraw, ImageFont

        self.im = Image.new("RGB", (int(width * U), int(round(height * U))), BG)
        self.d = ImageDraw.Draw(self.im)
        self.font = ImageFont.truetype(font_manager.findfont("DejaVu Sans"), 11 * U)
        self.bold = ImageFont.truetype(font_manager.findfont("DejaVu Sans:bold"), 11 * U)

    def rect(self, x, y, w, h, fill, r=4):
        self.d.rounded_rectangle([x * U, y * U, (x + w) * U, (y + h) * U], r * U, fill=fill)

    def text(self, x, y, s, fill=TEXT, anchor="lm", bold=False, h=ROW):
        self.d.text((x * U, (y + h / 2) * U), s, fill=fill, anchor=anchor, font=self.bold if bold else self.font)


def dim(c, on):
    return c if on else tuple(int(0.45 * a + 0.55 * b) for a, b in zip(c, PANEL))


def enum_name(item):
    try:
        return item.rna.enum_items[item.value].name
    except (KeyError, AttributeError):
        return str(item.value)


def draw_item(p, item, x, y, w, h):
    """Draw one recorded element in the box (x, y, w, h); p=None only measures. Returns height."""
    a, on, k = item.args, item.enabled, item.kind
    icon = GLYPH.get(a.get("icon", "NONE"), "")
    if k == "label":
        if p:
            fill = OK if a.get("icon") == "CHECKMARK" else ERR if a.get("icon") == "ERROR" else TEXT
            text = (icon + "  " if icon else "") + a.get("text", "")
            while p.d.textlength(text, font=p.font) > w * U and len(text) > 4:
                text = text[:-2] + "…"
            p.text(x + 2, y, text, dim(fill, on), h=h)
        return h
    if k.startswith("operator"):
        if p:
            p.rect(x, y, w, h, dim(BUTTON, on))
            label = a.get("text", item.name)
            p.text(x + w / 2, y, (icon + " " if icon else "") + label, dim(TEXT, on), anchor="mm", h=h)
        return h
    if k == "template_list":
        rows = max(a.get("rows", 5), len(getattr(a["dataptr"], a["propname"])))
        if p:
            p.rect(x, y, w, rows * ROW + 4, LIST_BG)
            coll, active = getattr(a["dataptr"], a["propname"]), getattr(a["active_dataptr"], a["active_propname"])
            from ui_recorder import RecordingLayout
            import bpy

            for i, entry in enumerate(coll):
                yy = y + 2 + i * ROW
                if i == active:
                    p.rect(x + 2, yy, w - 4, ROW, ACTIVE_ROW, r=3)
                rec = RecordingLayout()
                getattr(bpy.types, a["listtype_name"]).draw_item(None, None, rec, a["dataptr"], entry, 0,
                                                                 a["active_dataptr"], a["active_propname"], i)
                labels = rec.find("label")
                p.text(x + 8, yy, f"{GLYPH.get(labels[0].args.get('icon'), '')}  {labels[0].args['text']}")
                if len(labels) > 1:
                    p.text(x + w - 8, yy, GLYPH.get(labels[1].args.get("icon"), ""), anchor="rm")
        return rows * ROW + 4
    if k == "prop":
        t = item.rna.type
        name = a.get("text", item.name)
        if p and t == "BOOLEAN":
            p.rect(x + 2, y + 4, 12, 12, dim(CHECK_ON if item.value else BUTTON, on), r=3)
            if item.value:
                p.text(x + 8, y, "✓", dim(TEXT, on), anchor="mm", h=h)
            p.text(x + 20, y, name, dim(TEXT, on), h=h)
        elif p and t in ("INT", "FLOAT"):
            p.rect(x, y, w, h, dim(BUTTON, on))
            val = f"{item.value:.3f}" if t == "FLOAT" else str(item.value)
            if item.rna.subtype == "ANGLE" or name == "Field of View":
                val = f"{item.value:g}°"
            if name:
                p.text(x + 8, y, name, dim(TEXT, on), h=h)
                p.text(x + w - 8, y, val, dim(TEXT, on), anchor="rm", h=h)
            else:
                p.text(x + w / 2, y, val, dim(TEXT, on), anchor="mm", h=h)
        elif p and t in ("ENUM", "STRING"):
            lw = 0.4 * w if name else 0
            if name:
                p.text(x + 2, y, name, dim(TEXT, on), h=h)
            p.rect(x + lw, y, w - lw, h, dim(FIELD if t == "STRING" else BUTTON, on))
            shown = enum_name(item) if t == "ENUM" else (Path(item.value).name if item.value else "")
            p.text(x + lw + 8, y, shown, dim(TEXT if shown else DIM, on), h=h)
            p.text(x + w - 8, y, "⌄" if t == "ENUM" else "▭", dim(DIM, on), anchor="rm", h=h)
        return h
    if item.child is not None:
        return draw_layout(p, item, x, y, w)
    return h


def draw_layout(p, owner, x, y, w):
    """Draw the layout ``owner`` opened (an Item with a child, or the root layout). Returns height."""
    lay = owner.child if hasattr(owner, "child") else owner
    kind = lay._kind
    items = lay.children()
    h0 = 0
    if kind == "box":
        if p:
            p.rect(x, y, w, draw_layout(None, owner, x, y, w), (54, 54, 54))
        x, w, h0 = x + 6, w - 12, 6
    heading = getattr(owner, "args", {}).get("heading")
    if heading:
        if p:
            p.text(x + 2, y + h0, heading, DIM)
        h0 += ROW
    if kind == "row":
        narrow = [i.child is not None and all(c.kind.startswith("operator") and c.args.get("text") == ""
                                              for c in i.child.children()) for i in items]
        free = w - 24 * sum(narrow) - GAP * (len(items) - 1)
        wide = max(1, len(items) - sum(narrow))
        widths = [24 if n else free / wide for n in narrow]
        hh, xx = 0, x
        for it, ww in zip(items, widths):
            scale = lay._attrs.get("scale_y", 1.0)
            hh = max(hh, draw_item(p, it, xx, y + h0, ww, ROW * scale))
            xx += ww + GAP
        return h0 + hh + (6 if kind == "box" else 0)
    hh = h0
    for it in items:
        scale = lay._attrs.get("scale_y", 1.0)
        hh += draw_item(p, it, x, y + hh, w, ROW * scale) + GAP
    return hh + (6 if kind == "box" else 0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--photo", default=str(ROOT / "docs/examples/astronaut.png"))
    ap.add_argument("--width", type=int, default=300)
    a = ap.parse_args(argv)

    import bpy

    import glvd_blender
    from ui_recorder import draw

    bpy.ops.wm.read_factory_settings(use_empty=True)
    glvd_blender.register()
    try:
        s = bpy.context.scene.glvd
        s.photos.add().filepath = a.photo
        if bpy.ops.glvd.reconstruct() != {"FINISHED"}:
            raise SystemExit(f"reconstruction failed: {s.status}")
        bpy.context.view_layer.objects.active = bpy.data.objects["GLVD Face"]
        root = draw(bpy.types.GLVD_PT_main, bpy.context)
        W = a.width
        body = draw_layout(None, root, PAD, 0, W - 2 * PAD)
        p = Painter(W, body + 26 + 2 * PAD)
        p.rect(2, 2, W - 4, body + 22 + 2 * PAD, PANEL)
        p.rect(2, 2, W - 4, 22, HEADER)
        p.text(10, 3, "⌄  " + bpy.types.GLVD_PT_main.bl_label, bold=True)
        draw_layout(p, root, PAD, 26 + PAD // 2, W - 2 * PAD)
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        p.im.save(a.out)
        print(f"wrote {a.out} ({p.im.width}x{p.im.height}) from {len(root.items)} drawn elements")
    finally:
        glvd_blender.unregister()


if __name__ == "__main__":
    main()
