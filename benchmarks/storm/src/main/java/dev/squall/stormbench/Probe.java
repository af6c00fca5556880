package dev.squall.stormbench;

import java.util.concurrent.atomic.AtomicLong;

/**
 * What the topology reports to the measuring thread. LocalCluster runs every executor in
 * this JVM, so plain statics reach them.
 */
final class Probe {
    /** Trees acked at the spout (acking on), or tuples executed by the sink (acking off). */
    static final AtomicLong COMPLETED = new AtomicLong();
    static final AtomicLong FAILED = new AtomicLong();
    /** Spout emit → tree acked, recorded only inside the measured window. */
    static final Histogram COMPLETE_US = new Histogram();
    static volatile boolean measuring;

    private Probe() {}

    static void acked(long emitNanos) {
        COMPLETED.incrementAndGet();
        if (measuring) {
            COMPLETE_US.record((System.nanoTime() - emitNanos) / 1000);
        }
    }
}
