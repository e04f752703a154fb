#!/usr/bin/env python3
"""tests/bench/anchors.py -- the anchors sla-bench is compared with: torch SDPA with the
FLASH_ATTENTION backend (FA2 class) and the CUDNN_ATTENTION backend (FA3 class), forward and
backward, on the shapes of sla-bench (bf16, [B, H, N, D], no mask), timed with CUDA events
(median after warm-up). Skips (exit 0, a message) where torch or a GPU is missing.
Usage: anchors.py [--quick] [--csv FILE]"""
import argparse
import statistics
import sys

SHAPES = [(1, 12, 32760, 128), (1, 24, 32760, 64), (1, 12, 75600, 128)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="480p shape only, fewer runs")
    ap.add_argument("--csv", default=None)
    args = ap.parse_args()
    try:
        import torch
        from torch.nn.attention import SDPBackend, sdpa_kernel
        import torch.nn.functional as F
    except Exception as e:  # noqa: BLE001
        print(f"anchors.py: torch not available ({e}); skipped")
        return 0
    if not torch.cuda.is_available():
        print("anchors.py: no CUDA device; skipped")
        return 0
    dev = torch.device("cuda")
    print(f"anchors on {torch.cuda.get_device_name(0)}, torch {torch.__version__}")

    def timed(fn, budget_ms):
        fn()
        torch.cuda.synchronize()
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        fn()
        e1.record()
        e1.synchronize()
        est = max(e0.elapsed_time(e1), 1e-3)
        reps = int(min(30, max(5, budget_ms / est)))
        ts = []
        for _ in range(reps):
            e0.record()
            fn()
            e1.record()
            e1.synchronize()
            ts.append(e0.elapsed_time(e1))
        return statistics.median(ts)

    rows = []
    budget = 300.0 if args.quick else 1500.0
    for (B, H, N, D) in SHAPES[: 1 if args.quick else 3]:
        g = torch.Generator(device=dev).manual_seed(0)
        mk = lambda: (torch.rand(B, H, N, D, device=dev, generator=g, dtype=torch.float32) * 4 - 2).to(torch.bfloat16)
        q, k, v, do = mk(), mk(), mk(), mk()
        dense = 4.0 * N * N * D * B * H
        for name, backend in (("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)):
            try:
                with sdpa_kernel([backend]):
                    with torch.no_grad():
                        tf = timed(lambda: F.scaled_dot_product_attention(q, k, v), budget)
                    qg, kg, vg = (t.detach().requires_grad_(True) for t in (q, k, v))
                    o = F.scaled_dot_product_attention(qg, kg, vg)
                    tb = timed(lambda: torch.autograd.grad(o, (qg, kg, vg), do, retain_graph=True), budget)
                    del o, qg, kg, vg
            except Exception as e:  # noqa: BLE001
                print(f"B{B} H{H} N{N} D{D} {name}: not available ({str(e).splitlines()[0][:120]})")
                continue
            rows.append((B, H, N, D, name, tf, tb, dense / tf * 1e-9, 2.5 * dense / tb * 1e-9))
            print(f"B{B} H{H} N{N} D{D} sdpa-{name}: fwd {tf:.3f} ms ({dense / tf * 1e-9:.0f} TF/s), "
                  f"bwd {tb:.3f} ms ({2.5 * dense / tb * 1e-9:.0f} TF/s)", flush=True)
            torch.cuda.empty_cache()
    if args.csv:
        with open(args.csv, "w") as f:
            f.write("B,H,N,D,backend,fwd_ms,bwd_ms,fwd_tfs,bwd_tfs\n")
            for r in rows:
                f.write("%d,%d,%d,%d,%s,%.4f,%.4f,%.1f,%.1f\n" % r)
    print("\n| B | H | N | D | anchor | fwd ms | bwd ms | fwd+bwd ms | fwd TF/s | bwd TF/s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (B, H, N, D, name, tf, tb, ff, fb) in rows:
        print(f"| {B} | {H} | {N} | {D} | sdpa-{name} | {tf:.3f} | {tb:.3f} | {tf + tb:.3f} | {ff:.0f} | {fb:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
