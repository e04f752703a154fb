/* tests/test_sla_tiles.cu — kernels/cuda/sla_tiles.cuh's tiles_past_nk (which positions of a flash
 * kernel's key tile sequence the softmax must mask) against a brute-force enumeration of the
 * sequence's tiles, on the host (no GPU needed): random Nk with and without a partial last tile,
 * key blocks of 1 and 2 tiles, lut rows of random length in random order (and the ascending order
 * the selection writes), and dense ranges with a base and count (the dK/dV split's shape). A wrong
 * range would let keys past Nk into a softmax (the 21:50Z GPU run caught one that missed the second
 * tile of a 128-key block); this catches such a change in CI. */
#include <stdio.h>
#include <stdlib.h>

#include "cuda/sla_tiles.cuh"

static unsigned long long g_state = 0x2545F4914F6CDD1Dull;
static int rnd(int n) { /* uniform-ish in [0, n) */
    g_state ^= g_state << 13, g_state ^= g_state >> 7, g_state ^= g_state << 17;
    return (int)(g_state % (unsigned long long)n);
}

int main(void) {
    int failed = 0, cases = 0;
    int list[64];
    for (int trial = 0; trial < 200000 && failed < 10; trial++) {
        const int per = 1 + rnd(2), Nk = 1 + rnd(3000), tiles = (Nk + 63) / 64, Tn = (tiles + per - 1) / per;
        const bool dense = rnd(4) == 0;
        int len = 0, base = 0, count = 0;
        if (dense) {
            base = rnd(tiles), count = 1 + rnd(tiles - base);
        } else { /* len distinct blocks of 0 .. Tn - 1, shuffled or ascending */
            int all[64];
            const int nb = Tn < 64 ? Tn : 64, first = Tn - nb; /* the last 64 blocks (so the last one can occur) */
            for (int b = 0; b < nb; b++) all[b] = first + b;
            for (int b = nb - 1; b > 0; b--) {
                const int r = rnd(b + 1), x = all[b];
                all[b] = all[r], all[r] = x;
            }
            len = 1 + rnd(nb);
            for (int e = 0; e < len; e++) list[e] = all[e];
            if (rnd(2))
                for (int a = 1; a < len; a++)
                    for (int b = a; b > 0 && list[b - 1] > list[b]; b--) {
                        const int x = list[b];
                        list[b] = list[b - 1], list[b - 1] = x;
                    }
        }
        const int *lp = dense ? nullptr : list;
        auto find = [&](int blk) {
            for (int e = 0; e < len; e++)
                if (list[e] == blk) return e;
            return -1;
        };
        int span = -7;
        const int pit = tiles_past_nk(lp, per, base, count, Nk, find, span);
        /* brute force: position i of the sequence holds tile t; masked iff 64 t + 63 >= Nk */
        const int n = dense ? count : len * per;
        bool ok = span >= 0 && (span == 0) == (pit < 0);
        for (int i = 0; i < n && ok; i++) {
            const int t = dense ? base + i : list[i / per] * per + i % per;
            const bool past = 64 * t + 63 >= Nk, in = span > 0 && i >= pit && i < pit + span;
            ok = past == in;
        }
        cases++;
        if (!ok) {
            failed++;
            fprintf(stderr, "FAIL tiles_past_nk: Nk %d per %d %s base %d count %d len %d -> pit %d span %d\n", Nk, per,
                    dense ? "range" : "lut", base, count, len, pit, span);
        }
    }
    printf("test_sla_tiles: %d cases, %d failed\n", cases, failed);
    return failed ? 1 : 0;
}
