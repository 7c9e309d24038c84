"""Where the first run's compile time goes: the graphs `bash scripts/sample.sh` compiles.

    python benchmarks/compile_bench.py [--cache DIR] [--runs cold,warm,encoders] [--json]
                                       [--variant "gcc__cxxflags=-g" ...]

Each run is a fresh process: `cold` compiles what `uvs train --data sample --dim 256
--dim-word 128` compiles (`uvs.train.compile_run`: the update's two functions and the two
encoders) into an empty PyTensor cache (`base_compiledir`, a new temporary folder unless
--cache); `warm` does the same again on that cache; `encoders` compiles only the two
encoders on it, as each later command of the script (`uvs evalrank`, `uvs search`) does.
Printed per run: wall seconds of the process, its imports, the random initial parameters
(`init`: LAPACK's SVD, slow on a loaded machine with several BLAS threads), the compile and
each compiled function, how many C
modules were built and their gcc seconds (wall seconds of `uvs.prebuild`'s parallel builds),
and the Ops whose C code took longest. Each --variant (extra PYTENSOR_FLAGS, or a uvs
environment variable such as `UVS_COMPILE_JOBS=1`; '' is uvs's default) gets its own empty
cache and the same runs, variants taking turns run by run, so a load on the machine falls on
all alike.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def child(run: str) -> dict:
    """In the child process: compile, timing every C module built and every function."""
    t0 = time.perf_counter()
    sys.path.insert(0, ROOT)
    import numpy as np
    from pytensor.link.c.basic import CLinker

    from uvs import backend
    from uvs.model import build_image_encoder, build_sentence_encoder, init_params
    from uvs.train import compile_run
    from uvs.train_options import resolve_options
    from uvs.utils import init_tparams

    t_import = time.perf_counter() - t0
    built: list[tuple[str, float]] = []
    original = CLinker.compile_cmodule

    def timed_compile(self, location=None):
        t = time.perf_counter()
        try:
            return original(self, location)
        finally:
            ops = ",".join(sorted({type(n.op).__name__ if not hasattr(n.op, "scalar_op")
                                   else f"{type(n.op).__name__}{{{n.op.scalar_op}}}"
                                   for n in self.fgraph.apply_nodes}))
            built.append((ops, time.perf_counter() - t))

    CLinker.compile_cmodule = timed_compile
    from uvs import prebuild  # after uvs.backend, as backend.function imports it

    plain_prebuild = prebuild.prebuild

    def timed_prebuild(nodes, workers=None):
        t = time.perf_counter()
        n = plain_prebuild(nodes, workers)
        if n:
            built.append((f"{n} modules in parallel (uvs.prebuild)", time.perf_counter() - t))
            prebuilt.append(n)
        return n

    prebuild.prebuild = timed_prebuild
    prebuilt: list[int] = []
    functions: dict[str, float] = {}
    plain = backend.function

    def timed_function(*args, **kwargs):
        t = time.perf_counter()
        f = plain(*args, **kwargs)
        name = kwargs.get("name") or "?"
        functions[name] = functions.get(name, 0.0) + time.perf_counter() - t
        return f

    backend.function = timed_function
    t = time.perf_counter()
    options = resolve_options(data="sample", dim=256, dim_word=128,
                              saveto=os.path.join(tempfile.gettempdir(), "compile_bench.npz"))
    options["n_words"] = 1000
    params = init_params(options, rng=np.random.RandomState(0))
    t_setup = time.perf_counter() - t
    t = time.perf_counter()
    if run == "encoders":
        tparams = init_tparams(params)
        [x, m], s = build_sentence_encoder(tparams, options)
        backend.function([x, m], s, name="f_senc")
        [im], v = build_image_encoder(tparams, options)
        backend.function([im], v, name="f_ienc")
    else:
        compile_run(params, options, {})
    t_compile = time.perf_counter() - t
    by_op: dict[str, list[float]] = defaultdict(list)
    for ops, s in built:
        by_op[ops].append(s)
    return {"run": run, "import_s": t_import, "setup_s": t_setup, "compile_s": t_compile,
            "functions": functions,
            "modules": len(built) - len(prebuilt) + sum(prebuilt),
            "gcc_s": sum(s for _, s in built),
            "by_op": sorted(((k, len(v), sum(v)) for k, v in by_op.items()),
                            key=lambda r: -r[2])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", help="base_compiledir to use (default: a new empty folder)")
    ap.add_argument("--runs", default="cold,warm,encoders")
    ap.add_argument("--top", type=int, default=12, help="Ops to list")
    ap.add_argument("--variant", action="append",
                    help="extra PYTENSOR_FLAGS of a variant to compare, or NAME=VALUE of a UVS_ "
                         "environment variable ('' = uvs's default)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child)))
        return
    variants = a.variant or [""]
    caches = {v: (a.cache if a.cache and len(variants) == 1
                  else tempfile.mkdtemp(prefix="uvs-compile-bench-")) for v in variants}
    results = []
    for run in a.runs.split(","):
        for variant in variants:
            env = dict(os.environ)
            flags = [f for f in env.get("PYTENSOR_FLAGS", "").split(",")
                     if f and not f.startswith("base_compiledir=")]
            if variant.startswith("UVS_"):  # an environment variable of uvs's
                name, _, value = variant.partition("=")
                env[name] = value
            elif variant:
                flags.append(variant)
            env["PYTENSOR_FLAGS"] = ",".join(flags + [f"base_compiledir={caches[variant]}"])
            t = time.perf_counter()
            p = subprocess.run([sys.executable, os.path.abspath(__file__), "--child",
                                "encoders" if run == "encoders" else "train"],
                               env=env, capture_output=True, text=True, cwd=ROOT)
            wall = time.perf_counter() - t
            if p.returncode:
                sys.exit(f"{run}: the child failed:\n{p.stderr[-2000:]}")
            r = json.loads(p.stdout.strip().splitlines()[-1])
            r.update(run=f"{run} {variant}".strip(), process_s=wall)
            results.append(r)
            print(f"{r['run']}: {wall:.1f} s", file=sys.stderr)
    cache = " ".join(caches.values())
    if a.json:
        print(json.dumps({"cache": cache, "runs": results}))
        return
    print(f"cache {cache}; {os.cpu_count()} cores, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"{'run':<28} {'process':>8} {'imports':>8} {'init':>6} {'compile':>8} {'C modules':>9} "
          f"{'gcc s':>7}  per function (s)")
    for r in results:
        fns = ", ".join(f"{k} {v:.1f}" for k, v in r["functions"].items())
        print(f"{r['run']:<28} {r['process_s']:8.1f} {r['import_s']:8.1f} {r['setup_s']:6.1f} "
              f"{r['compile_s']:8.1f} {r['modules']:9d} {r['gcc_s']:7.1f}  {fns}")
    for r in results:
        if r["by_op"]:
            print(f"\n{r['run']}: C modules by the Ops in them (count, gcc seconds), "
                  f"top {a.top}:")
            for ops, n, s in r["by_op"][:a.top]:
                print(f"  {s:6.1f} s {n:3d}x  {ops[:110]}")


if __name__ == "__main__":
    main()
