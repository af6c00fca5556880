package dev.squall.stormbench;

import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import org.apache.storm.Config;
import org.apache.storm.LocalCluster;
import org.apache.storm.generated.KillOptions;
import org.apache.storm.topology.TopologyBuilder;
import org.apache.storm.tuple.Fields;

/**
 * One measurement of one case on Storm's in-process LocalCluster, printed as one JSON line
 * on stdout (logs go to stderr).
 *
 * <p>Usage: {@code StormBench CASE --warmup S --seconds S [--venv DIR] [--python-dir DIR]}, or
 * {@code StormBench kafka-redis-ack --bootstrap HOST:PORT --topic T --group G --redis HOST:PORT
 * --records N} (see {@link KafkaCase}).
 *
 * <p>Like squall-bench: parallelism 1 per component, 1 worker, 100-byte payloads; acking
 * cases use 1 acker, maxSpoutPending 10,000 and a 30 s message timeout. Throughput counts
 * trees acked at the spout (acking on) or tuples executed by the sink (acking off) over the
 * window that follows the warm-up; complete latency is spout emit → ack, inside the window.
 */
public final class StormBench {
    private StormBench() {}

    public static void main(String[] args) throws Exception {
        String name = args.length > 0 ? args[0] : "";
        int warmup = 5;
        int seconds = 10;
        String venv = ".cache/venv";
        String pythonDir = "multilang/python";
        String bootstrap = "";
        String topic = "";
        String group = "";
        String redis = "";
        long records = 0;
        for (int i = 1; i + 1 < args.length; i += 2) {
            switch (args[i]) {
                case "--warmup" -> warmup = Integer.parseInt(args[i + 1]);
                case "--seconds" -> seconds = Integer.parseInt(args[i + 1]);
                case "--venv" -> venv = args[i + 1];
                case "--python-dir" -> pythonDir = args[i + 1];
                case "--bootstrap" -> bootstrap = args[i + 1];
                case "--topic" -> topic = args[i + 1];
                case "--group" -> group = args[i + 1];
                case "--redis" -> redis = args[i + 1];
                case "--records" -> records = Long.parseLong(args[i + 1]);
                default -> throw new IllegalArgumentException("unknown argument " + args[i]);
            }
        }
        if (name.equals(KafkaCase.NAME)) {
            KafkaCase.run(bootstrap, topic, group, redis, records);
            return;
        }
        boolean acking = name.endsWith("-ack");
        TopologyBuilder b = new TopologyBuilder();
        switch (name) {
            case "const-null-noack", "const-null-ack" -> {
                b.setSpout("spout", new Components.ConstSpout(acking), 1);
                b.setBolt("sink", new Components.NullBolt(!acking), 1).shuffleGrouping("spout");
            }
            case "const-id-null-noack", "const-id-null-ack" -> {
                b.setSpout("spout", new Components.ConstSpout(acking), 1);
                b.setBolt("id", new Components.IdBolt(), 1).shuffleGrouping("spout");
                b.setBolt("sink", new Components.NullBolt(!acking), 1).shuffleGrouping("id");
            }
            case "wordcount-ack" -> {
                b.setSpout("spout", new Components.SentenceSpout(), 1);
                b.setBolt("split", new Components.SplitBolt(), 1).shuffleGrouping("spout");
                b.setBolt("sink", new Components.CountBolt(), 1).fieldsGrouping("split", new Fields("word"));
            }
            case "multilang-ack" -> {
                String run = Path.of(venv, "bin", "streamparse_run").toAbsolutePath().toString();
                String dir = Path.of(pythonDir).toAbsolutePath().toString();
                b.setSpout("spout", new Components.ConstSpout(true), 1);
                b.setBolt("shell", new Components.PassShellBolt(run, dir), 1).shuffleGrouping("spout");
                b.setBolt("sink", new Components.NullBolt(false), 1).shuffleGrouping("shell");
            }
            default -> throw new IllegalArgumentException("unknown case " + name
                    + "; one of const-null-noack const-null-ack const-id-null-noack const-id-null-ack"
                    + " wordcount-ack multilang-ack " + KafkaCase.NAME);
        }

        Config conf = new Config();
        conf.setNumWorkers(1);
        conf.setNumAckers(acking ? 1 : 0);
        conf.setMessageTimeoutSecs(30);
        if (acking) {
            conf.setMaxSpoutPending(10_000);
        }

        LocalCluster cluster = new LocalCluster.Builder()
                .withDaemonConf(Config.STORM_LOCAL_HOSTNAME, "127.0.0.1")
                .build();
        cluster.submitTopology("bench", conf, b.createTopology());
        // Warm-up starts once tuples flow (LocalCluster takes a few seconds to schedule).
        long deadline = System.nanoTime() + 120_000_000_000L;
        while (Probe.COMPLETED.get() == 0) {
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException(name + ": nothing completed within 120 s of submitting");
            }
            Thread.sleep(20);
        }
        Thread.sleep(warmup * 1000L);

        Probe.COMPLETE_US.clear();
        Probe.measuring = true;
        long n0 = Probe.COMPLETED.get();
        long f0 = Probe.FAILED.get();
        long cpu0 = cpuNanos();
        long t0 = System.nanoTime();
        Thread.sleep(seconds * 1000L);
        long n1 = Probe.COMPLETED.get();
        long t1 = System.nanoTime();
        long cpu1 = cpuNanos();
        Probe.measuring = false;
        long f1 = Probe.FAILED.get();
        Thread.sleep(50); // let an ack that read `measuring` before the flip finish recording

        double elapsed = (t1 - t0) / 1e9;
        long n = n1 - n0;
        double cpuPerMillion = n == 0 ? 0 : (cpu1 - cpu0) / 1e9 / (n / 1e6);
        System.out.printf(Locale.ROOT,
                "{\"name\":\"%s\",\"throughput\":%.1f,\"complete_p50_us\":%d,\"complete_p99_us\":%d,"
                        + "\"cpu_s_per_million\":%.4f,\"peak_rss_kib\":%d,\"failed\":%d}%n",
                name, n / elapsed,
                acking ? Probe.COMPLETE_US.quantile(0.50) : 0,
                acking ? Probe.COMPLETE_US.quantile(0.99) : 0,
                cpuPerMillion, peakRssKib(), f1 - f0);
        System.out.flush();

        // Stop the topology so a ShellBolt's child is cleaned up, then leave at once:
        // LocalCluster's orderly shutdown takes seconds and measures nothing.
        KillOptions now = new KillOptions();
        now.set_wait_secs(0);
        cluster.killTopologyWithOpts("bench", now);
        Thread.sleep(2000);
        Runtime.getRuntime().halt(n > 0 ? 0 : 1);
    }

    /** User + system CPU time of this JVM, ns. */
    static long cpuNanos() {
        var os = ManagementFactory.getOperatingSystemMXBean();
        if (os instanceof com.sun.management.OperatingSystemMXBean sun) {
            return sun.getProcessCpuTime();
        }
        return 0;
    }

    /** VmHWM of this process, KiB (0 when /proc is unavailable). */
    static long peakRssKib() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("VmHWM:")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", ""));
                }
            }
        } catch (Exception e) {
            // fall through
        }
        return 0;
    }
}
