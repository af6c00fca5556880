package dev.squall.stormbench;

import java.util.concurrent.atomic.AtomicLongArray;

/**
 * Latencies in microseconds, log-linear buckets: exact below 64 µs, then 32 buckets per
 * power of two (about 3% wide). Written by the spout thread, read by the main thread.
 */
final class Histogram {
    private static final int EXACT = 64;
    private static final int PER_OCTAVE = 32;
    private final AtomicLongArray counts = new AtomicLongArray(64 * PER_OCTAVE);

    static int index(long us) {
        if (us < EXACT) {
            return (int) Math.max(us, 0);
        }
        int shift = 63 - Long.numberOfLeadingZeros(us) - 5;
        return (shift + 1) * PER_OCTAVE + (int) (us >>> shift) - PER_OCTAVE;
    }

    /** Middle of bucket {@code i}, µs. */
    static long value(int i) {
        if (i < EXACT) {
            return i;
        }
        int shift = i / PER_OCTAVE - 1;
        long mantissa = i % PER_OCTAVE + PER_OCTAVE;
        return (mantissa << shift) + (1L << shift) / 2;
    }

    void record(long us) {
        counts.incrementAndGet(index(us));
    }

    void clear() {
        for (int i = 0; i < counts.length(); i++) {
            counts.set(i, 0);
        }
    }

    /** The q-quantile (0 < q ≤ 1), µs; 0 when nothing was recorded. */
    long quantile(double q) {
        long total = 0;
        for (int i = 0; i < counts.length(); i++) {
            total += counts.get(i);
        }
        if (total == 0) {
            return 0;
        }
        long rank = (long) Math.ceil(q * total);
        long seen = 0;
        for (int i = 0; i < counts.length(); i++) {
            seen += counts.get(i);
            if (seen >= rank) {
                return value(i);
            }
        }
        return value(counts.length() - 1);
    }
}
