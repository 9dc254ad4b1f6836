"""How fast the bundled embedder starts and embeds error messages.

    python -m benchmarks.learning.embed [--messages 2000] [--threads N]

Ready time, in a fresh process (best of 3): ``import playloop`` (the package), then
``import playloop.learn.embed``, then the first vector (model sha256 checked, session
made). Throughput: messages/s over error-message-sized texts
(the corpus of benchmarks/learning), best of ``--rounds`` after a warm-up.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from benchmarks.learning.corpus import load_corpus

READY = """
import time
t0 = time.perf_counter()
import playloop
t1 = time.perf_counter()
import playloop.learn.embed as e
t2 = time.perf_counter()
x = e.default_embedder()
x.embed(["connection refused"])
t3 = time.perf_counter()
print(f"{(t1 - t0) * 1000:.1f} {(t2 - t1) * 1000:.1f} {(t3 - t2) * 1000:.0f}")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    env = dict(os.environ)
    if args.threads:
        env["PLAYLOOP_EMBED_THREADS"] = str(args.threads)
    readies = []
    for _ in range(3):
        out = subprocess.run(
            [sys.executable, "-c", READY], env=env, check=True, capture_output=True, text=True
        ).stdout.split()
        readies.append((float(out[0]), float(out[1]), float(out[2])))
    package, module, ready = min(readies, key=lambda r: r[2])
    print(
        f"import playloop: {package:.0f} ms; then import playloop.learn.embed: {module:.1f} ms; "
        f"then the first vector (sha256 check, session, tokenizer): {ready:.0f} ms"
    )

    from playloop.learn.embed import OnnxEmbedder

    texts = [e.text for e in load_corpus().all_texts()]
    texts = (texts * (args.messages // len(texts) + 1))[: args.messages]
    texts = [f"{t} (run {i})" for i, t in enumerate(texts)]  # no two alike
    embedder = OnnxEmbedder(threads=args.threads)
    embedder.embed(texts[:64])
    rates = []
    for _ in range(args.rounds):
        started = time.perf_counter()
        embedder.embed(texts)
        rates.append(len(texts) / (time.perf_counter() - started))
    print(
        f"{embedder.name} on {embedder.threads} threads ({os.cpu_count()} cores): "
        f"{max(rates):.0f} messages/s (rounds: {', '.join(f'{r:.0f}' for r in rates)})"
    )


if __name__ == "__main__":
    main()
