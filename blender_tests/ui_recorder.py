"""A stand-in for ``bpy.types.UILayout`` so that ``draw()`` code can run in the bpy module.

The bpy module draws no UI, so a panel's ``draw()`` never runs in a headless test, and a typo in
a property name, an operator id, an icon or a keyword would only show in an artist's Blender as a
broken panel. :class:`RecordingLayout` checks every call against Blender's own RNA description of
``UILayout`` (functions, their keyword names and required parameters, icon names, layout
attributes) and against the data it is given (the property exists on the data, the operator and
the UI list are registered), then records it, so tests can also assert what the panel shows.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import bpy

_RNA = bpy.types.UILayout.bl_rna
_SUBLAYOUTS = {"row", "column", "box", "split", "column_flow", "grid_flow"}


@dataclass
class Item:
    """One drawn element: ``kind`` is the UILayout function ("prop", "operator", "label", ...),
    ``args`` its arguments by RNA parameter name, ``enabled`` False when it is greyed out (its own
    layout or one above it has ``enabled = False``)."""
    kind: str
    args: dict
    enabled: bool
    value: object = None          # a property's current value (for "prop")
    name: str = ""                # the RNA name of a property / label of an operator
    rna: object = None            # the property's RNA definition (for "prop")
    layout: object = None         # the RecordingLayout it was drawn into
    child: object = None          # the RecordingLayout it opened (row, column, box, ...)


@dataclass
class _Shared:
    items: list = field(default_factory=list)


class RecordingLayout:
    def __init__(self, _shared=None, _parent=None, _kind="layout"):
        object.__setattr__(self, "_shared", _shared or _Shared())
        object.__setattr__(self, "_parent", _parent)
        object.__setattr__(self, "_kind", _kind)
        object.__setattr__(self, "_attrs", {})

    # -- what a test reads -------------------------------------------------------------------
    @property
    def items(self) -> list[Item]:
        return self._shared.items

    def find(self, kind: str, **match) -> list[Item]:
        return [i for i in self.items if i.kind == kind and all(i.args.get(k) == v for k, v in match.items())]

    # -- UILayout attributes -------------------------------------------------------------------
    def __setattr__(self, name, value):
        if name not in _RNA.properties or name == "rna_type":
            raise AttributeError(f"UILayout has no attribute {name!r}")
        self._attrs[name] = value

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        if name in _RNA.properties:
            return self._attrs.get(name, _RNA.properties[name].default)
        if name not in _RNA.functions:
            raise AttributeError(f"UILayout has no function {name!r}")
        return lambda *a, **kw: self._call(name, a, kw)

    def _enabled(self) -> bool:
        lay = self
        while lay is not None:
            if not (lay._attrs.get("enabled", True) and lay._attrs.get("active", True)):
                return False
            lay = lay._parent
        return True

    # -- checks ----------------------------------------------------------------------------------
    def _call(self, fname, a, kw):
        fn = _RNA.functions[fname]
        params = [p for p in fn.parameters if not p.is_output]
        names = [p.identifier for p in params]
        if len(a) > len(names):
            raise TypeError(f"UILayout.{fname}() takes at most {len(names)} positional arguments")
        args = dict(zip(names, a))
        for k, v in kw.items():
            if k not in names:
                raise TypeError(f"UILayout.{fname}() has no keyword {k!r} (it has {names})")
            if k in args:
                raise TypeError(f"UILayout.{fname}() got {k!r} twice")
            args[k] = v
        missing = [p.identifier for p in params if p.is_required and p.identifier not in args]
        if missing:
            raise TypeError(f"UILayout.{fname}() misses {missing}")
        for p in params:
            if p.identifier in args and p.type == "ENUM" and not p.is_enum_flag:
                items = p.enum_items.keys()
                if args[p.identifier] not in items:
                    raise TypeError(f"UILayout.{fname}(): {p.identifier}={args[p.identifier]!r} is not one of "
                                    f"Blender's ({len(items)} items)")
        item = Item(fname, args, self._enabled(), layout=self)
        if fname in ("prop", "prop_search", "prop_enum", "prop_menu_enum", "props_enum"):
            data, prop = args["data"], args["property"]
            rna = getattr(data, "bl_rna", None)
            if rna is None or prop not in rna.properties:
                raise AttributeError(f"{type(data).__name__} has no property {prop!r} to draw")
            item.value, item.rna = getattr(data, prop), rna.properties[prop]
            item.name = item.rna.name
        elif fname.startswith("operator"):
            mod, _, op = args["operator"].partition(".")
            try:
                rna_type = getattr(getattr(bpy.ops, mod), op).get_rna_type()
            except (AttributeError, KeyError) as e:
                raise AttributeError(f"operator {args['operator']!r} is not registered") from e
            item.name = rna_type.name
            item.props = OperatorProps(args["operator"], rna_type)
        elif fname == "template_list":
            if not hasattr(bpy.types, args["listtype_name"]):
                raise AttributeError(f"UI list {args['listtype_name']!r} is not registered")
            for d, p, want in (("dataptr", "propname", "COLLECTION"), ("active_dataptr", "active_propname", "INT")):
                rna = args[d].bl_rna.properties.get(args[p])
                if rna is None or rna.type != want:
                    raise AttributeError(f"template_list: {args[p]!r} is not a {want} property")
        self._shared.items.append(item)
        if fname in _SUBLAYOUTS:
            item.child = RecordingLayout(self._shared, self, fname)
            return item.child
        return getattr(item, "props", None)

    def children(self) -> list[Item]:
        """The items drawn directly into this layout, in order."""
        return [i for i in self.items if i.layout is self]


class OperatorProps:
    """What ``layout.operator()`` returns: the button's operator properties. Setting one that the
    operator does not have raises, as Blender does."""

    def __init__(self, idname, rna_type):
        object.__setattr__(self, "_idname", idname)
        object.__setattr__(self, "_rna", rna_type)
        object.__setattr__(self, "values", {})

    def __setattr__(self, name, value):
        if name not in self._rna.properties:
            raise AttributeError(f"operator {self._idname!r} has no property {name!r}")
        self.values[name] = value


class PanelProxy:
    """``self`` for a Panel's / AddonPreferences' draw(): ``layout`` is the recorder, every other
    attribute (properties of preferences, bl_rna) comes from ``target``."""

    def __init__(self, layout: RecordingLayout, target=None):
        object.__setattr__(self, "layout", layout)
        object.__setattr__(self, "_target", target)

    def __getattr__(self, name):
        return getattr(self._target, name)


def draw(cls, context, target=None) -> RecordingLayout:
    """Run ``cls.draw`` (a Panel or AddonPreferences class) with a recording layout."""
    layout = RecordingLayout()
    cls.draw(PanelProxy(layout, target), context)
    return layout
