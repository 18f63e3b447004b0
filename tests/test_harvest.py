from codedpo_assets.harvest import HarvestRules, Rejection, decode_source, harvest_module

DEFAULT_RULES = HarvestRules()


def reasons(text: str, rules: HarvestRules = DEFAULT_RULES) -> dict[str, str]:
    seeds, rejected = harvest_module(text, rules)
    out = {s.symbol: "kept" for s in seeds}
    out.update({r.symbol or "<module>": r.reason for r in rejected})
    return out


MODULE = '''
import math
import os
import collections as co
from functools import reduce
import numpy as np
from . import sibling

LIMIT = 10

def hyp(a, b):
    """Hypotenuse."""
    return math.sqrt(a * a + b * b)

def counts(words):
    c = co.Counter(words)
    return sorted(c.items())

def product(xs):
    out = reduce(lambda a, b: a * b, xs, 1)
    return out

def fact(n):
    if n < 2:
        return 1
    return n * fact(n - 1)

def listdir(p):
    names = os.listdir(p)
    return sorted(names)

def reads(path):
    with open(path) as fh:
        return fh.read()

def shout(x):
    y = x.upper()
    print(y)

def arr(x):
    a = np.array(x)
    return a.sum()

def rel(x):
    y = sibling.f(x)
    return y

def capped(x):
    y = min(x, LIMIT)
    return y

def bump(x):
    global LIMIT
    LIMIT += x
    return LIMIT

def one(x): return x

def stub(x):
    """Not done."""
    raise NotImplementedError

async def fetch(x):
    await x
    return x

@staticmethod
def deco(x):
    y = x
    return y

def stamp(x):
    import datetime
    return datetime.datetime.now().isoformat() + x

def roll(n):
    import random
    return random.randint(1, n) + 0

def local_import(s):
    import json
    return json.dumps(s, sort_keys=True)

def sub(cmd):
    import subprocess
    return subprocess.run(cmd)
'''


def test_harvest_rules_keep_only_self_contained_pure_functions():
    got = reasons(MODULE)
    assert got == {
        "hyp": "kept",
        "counts": "kept",
        "product": "kept",
        "fact": "kept",  # recursion on its own name is fine
        "local_import": "kept",
        "listdir": "side_effect:filesystem",
        "reads": "side_effect:io",
        "shout": "side_effect:io",
        "arr": "non_stdlib_import",
        "rel": "non_stdlib_import",
        "capped": "module_dependency",
        "bump": "global_state",
        "one": "too_short",
        "stub": "trivial_body",
        "fetch": "async",
        "deco": "decorated",
        "stamp": "nondeterministic",
        "roll": "nondeterministic",
        "sub": "side_effect:process",
    }


def test_seed_code_carries_only_the_imports_it_uses_and_the_original_text():
    seeds, _ = harvest_module(MODULE)
    by_name = {s.symbol: s for s in seeds}
    assert by_name["hyp"].imports == ("import math",)
    assert by_name["counts"].imports == ("import collections as co",)
    assert by_name["product"].imports == ("from functools import reduce",)
    assert '"""Hypotenuse."""' in by_name["hyp"].code
    for seed in seeds:  # each seed runs on its own
        namespace: dict = {}
        exec(compile(seed.code, "<seed>", "exec"), namespace)
        assert callable(namespace[seed.symbol])
    assert by_name["fact"].code.count("import") == 0


def test_size_bounds_are_configurable():
    text = "def f(a):\n" + "".join(f"    a += {i}\n" for i in range(10)) + "    return a\n"
    assert reasons(text) == {"f": "kept"}
    assert reasons(text, HarvestRules(max_lines=5)) == {"f": "too_long"}
    assert reasons(text, HarvestRules(min_lines=20, max_lines=30)) == {"f": "too_short"}


def test_duplicates_within_a_module_are_kept_once():
    text = '''
def area(w, h):
    """Area."""
    return w * h

def surface(width, height):
    # same computation, other names and no docstring
    return width * height
'''.replace("return w * h", "result = w * h\n    return result").replace(
        "return width * height", "out = width * height\n    return out"
    )
    seeds, rejected = harvest_module(text)
    assert [s.symbol for s in seeds] == ["area"]
    assert [(r.symbol, r.reason) for r in rejected] == [("surface", "duplicate")]


def test_bad_text_is_a_reason_not_a_crash():
    assert harvest_module("def f(:\n  pass")[1][0].reason == "syntax_error"
    assert harvest_module("x = (" * 200 + ")" * 200)[1][0].reason == "syntax_error"  # parser recursion limit
    seeds, rejected = harvest_module("")
    assert seeds == [] and rejected == []


def test_decode_source_handles_binary_encodings_and_size():
    rules = HarvestRules(max_file_bytes=100)
    assert decode_source(b"\x00\x01ELF", rules) == Rejection("binary", "contains NUL bytes")
    assert decode_source(b"x = 1\n" * 50, rules).reason == "too_large"
    assert decode_source("s = 'caf\u00e9'\n".encode("latin-1"), rules).reason == "not_utf8"
    cookie = "# -*- coding: latin-1 -*-\ns = 'caf\u00e9'\n".encode("latin-1")
    assert decode_source(cookie, rules) == "# -*- coding: latin-1 -*-\ns = 'caf\u00e9'\n"
