"""Reads a streamparse topology class for `squall import streamparse`.

Usage: python streamparse_import.py TOPOLOGY_FILE [CLASS_NAME]

The file is imported the way `sparse` imports it (its directory, the project root and the
project's `src/` on sys.path), so streamparse's own Topology metaclass builds the specs.
What it built is written as one JSON document on stdout: {"ok": {...}} or
{"error": {"kind", "message", "line"}}. Deciding what Squall can run is left to the
caller; this only reports what the class says, with the source line of each part.
"""

import ast
import importlib.util
import json
import os
import sys
import sysconfig
import traceback


class Failure(Exception):
    def __init__(self, kind, message, line=None):
        super().__init__(message)
        self.kind = kind
        self.line = line


def main():
    # Anything the topology's modules print must not mix with the JSON: fd 1 becomes
    # stderr for them, and the document goes to a copy of the original fd 1.
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    path = os.path.abspath(sys.argv[1])
    wanted = sys.argv[2] if len(sys.argv) > 2 else ""
    try:
        result = {"ok": read(path, wanted)}
    except Failure as e:
        result = {"error": {"kind": e.kind, "message": str(e), "line": e.line}}
    json.dump(result, out)
    out.close()


def read(path, wanted):
    try:
        from streamparse import Topology
        from streamparse.dsl.topology import TopologyType
    except ImportError as e:
        raise Failure("no-streamparse", f"{type(e).__name__}: {e}")
    module = load(path)
    classes = [
        c
        for c in vars(module).values()
        if isinstance(c, TopologyType) and c is not Topology and c.__module__ == module.__name__
    ]
    if wanted:
        classes = [c for c in classes if c.__name__ == wanted]
    if len(classes) != 1:
        names = ", ".join(c.__name__ for c in classes) or "none"
        raise Failure("no-topology", f"expected one Topology subclass, found: {names}")
    cls = classes[0]
    lines = attribute_lines(path, cls.__name__)
    specs = {id(v): k for k, v in vars(cls).items()}
    try:
        config = json.loads(json.dumps(cls.config))
    except (TypeError, ValueError) as e:
        raise Failure("unsupported", f"config: {e}", lines.get("config"))
    return {
        "class": cls.__name__,
        "line": lines.get("", 0),
        "config": config,
        "configLine": lines.get("config"),
        "project": project_config(path),
        "srcRoot": src_root(path),
        "components": [component(s, lines.get(specs.get(id(s)), lines.get("", 0))) for s in cls.specs],
    }


def load(path):
    topology_dir = os.path.dirname(path)
    project = os.path.dirname(topology_dir)
    # sparse puts ../src and the topology's directory on the path; the project root
    # also serves projects whose modules sit beside topologies/.
    for p in (os.path.join(project, "src"), topology_dir, project):
        if p not in sys.path:
            sys.path.append(p)
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None:
        raise Failure("load", f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001 -- any error in the user's file is reported
        raise Failure("load", f"{type(e).__name__}: {e}", error_line(e, path))
    return module


def error_line(e, path):
    """The last line of the topology file in the traceback, where the class went wrong."""
    line = getattr(e, "lineno", None) if isinstance(e, SyntaxError) else None
    for frame in traceback.extract_tb(e.__traceback__):
        if os.path.abspath(frame.filename) == path:
            line = frame.lineno
    return line


def attribute_lines(path, class_name):
    """Line of each assignment in the class body by name; "" is the class itself."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            lines = {"": node.lineno}
            for stmt in node.body:
                targets = stmt.targets if isinstance(stmt, ast.Assign) else []
                if isinstance(stmt, ast.AnnAssign):
                    targets = [stmt.target]
                for t in targets:
                    if isinstance(t, ast.Name):
                        lines[t.id] = stmt.lineno
            return lines
    return {}


def project_config(path):
    """What the project's config.json (beside topologies/) says of the serializer, which
    `sparse` passes to streamparse_run: the top-level one and each environment's own.
    None without a config.json."""
    config = os.path.join(os.path.dirname(os.path.dirname(path)), "config.json")
    try:
        with open(config, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise Failure("config", f"{config}: {e}")
    if not isinstance(data, dict):
        raise Failure("config", f"{config}: expected a JSON object")
    envs = data.get("envs") if isinstance(data.get("envs"), dict) else {}
    return {
        "file": config,
        "serializer": data.get("serializer"),
        "envSerializers": {
            name: env["serializer"] for name, env in envs.items() if isinstance(env, dict) and "serializer" in env
        },
    }


def src_root(path):
    project = os.path.dirname(os.path.dirname(path))
    src = os.path.join(project, "src")
    return src if os.path.isdir(src) else project


def module_root(cls):
    """The directory `streamparse_run module.Class` must run in to import cls, or None
    when the module is installed (found wherever the interpreter runs)."""
    module = sys.modules.get(cls.__module__)
    file = getattr(module, "__file__", None)
    if not file:
        return None
    file = os.path.abspath(file)
    installed = {sysconfig.get_paths()[k] for k in ("purelib", "platlib", "stdlib")}
    if any(file.startswith(os.path.abspath(p) + os.sep) for p in installed):
        return None
    root = os.path.dirname(file)
    depth = cls.__module__.count(".") + (os.path.basename(file) == "__init__.py")
    for _ in range(depth):
        root = os.path.dirname(root)
    return root


def component(spec, line):
    from streamparse.dsl.bolt import JavaBoltSpec, ShellBoltSpec

    c = {
        "name": spec.name,
        "line": line,
        "role": "bolt" if isinstance(spec, (JavaBoltSpec, ShellBoltSpec)) else "spout",
        "class": f"{spec.component_cls.__module__}.{spec.component_cls.__qualname__}",
        "par": spec.par,
        "config": json.loads(spec.config or "{}"),
        "outputs": [
            {"stream": s, "fields": list(i.output_fields or []), "direct": bool(i.direct)}
            for s, i in spec.outputs.items()
        ],
        "inputs": [
            {"component": g.componentId, "stream": g.streamId, "grouping": grouping(gr)}
            for g, gr in spec.inputs.items()
        ],
        "moduleRoot": module_root(spec.component_cls),
    }
    obj = spec.component_object
    if obj.shell is not None:
        c["shell"] = {"command": obj.shell.execution_command, "script": obj.shell.script}
    elif obj.java_object is not None:
        c["java"] = obj.java_object.full_class_name
    else:
        c["java"] = "a serialized Java object"
    return c


def grouping(g):
    if g.fields is not None:
        return {"type": "fields", "fields": list(g.fields)} if g.fields else {"type": "global"}
    if g.custom_object is not None:
        return {"type": "custom", "class": g.custom_object.full_class_name}
    if g.custom_serialized is not None:
        return {"type": "custom", "class": "a serialized Java object"}
    for kind in ("shuffle", "all", "none", "direct", "local_or_shuffle"):
        if getattr(g, kind, None) is not None:
            return {"type": kind}
    return {"type": "unknown"}


if __name__ == "__main__":
    main()
