"""Writes emv_vectors.json: EMV values computed by pyemv (an independent
implementation, from PyPI: `pip install pyemv==1.5.0`) for the inputs
below, so `emv_vectors.rs` can check that paybridge's `crypto::emv` computes
the same. Run from this folder: `python3 emv_vectors.py > emv_vectors.json`.
The inputs are fixed (a seeded generator): the file changes only when this
script does.
"""

import json
import random

from pyemv import ac, kd

rng = random.Random(20261207)


def hexs(b):
    return b.hex().upper()


def digits(n):
    return "".join(rng.choice("0123456789") for _ in range(n))


vectors = []
for i in range(24):
    imk = bytes(rng.randrange(256) for _ in range(16))
    pan = digits(rng.choice([16, 16, 19, 13]))
    psn = "%02d" % rng.randrange(100)
    mk = kd.derive_icc_mk_a(imk, pan=pan, psn=psn)
    atc = rng.randrange(1, 65536)
    r = atc.to_bytes(2, "big") + b"\x00" * 6
    sk = kd.derive_common_sk(mk, r)
    data = bytes(rng.randrange(256) for _ in range(rng.choice([29, 32, 33, 37, 45])))
    padding = rng.choice([1, 2])
    arqc = ac.generate_ac(sk, data, padding_type=ac.PaddingType(padding))
    arc = bytes(rng.choice([b"\x00\x00", b"\x30\x30", b"\x30\x35"]))
    arpc = ac.generate_arpc_1(sk, arqc, arc)
    vectors.append(
        {
            "imk": hexs(imk),
            "pan": pan,
            "psn": psn,
            "icc_mk": hexs(mk),
            "atc": atc,
            "session_key": hexs(sk),
            "data": hexs(data),
            "padding": padding,
            "arqc": hexs(arqc),
            "arc": hexs(arc),
            "arpc": hexs(arpc),
        }
    )

print(json.dumps({"generator": "pyemv 1.5.0", "vectors": vectors}, indent=1))
