package dev.squall.stormbench;

import java.util.Locale;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.storm.Config;
import org.apache.storm.LocalCluster;
import org.apache.storm.generated.KillOptions;
import org.apache.storm.kafka.spout.KafkaSpoutConfig;
import org.apache.storm.topology.TopologyBuilder;

/**
 * The Kafka case, {@code kafka-redis-ack}: storm-kafka-client's KafkaSpout (at-least-once
 * and every other setting at its default, a consumer group of its own) reading a topic
 * pre-loaded with {@code records} edits → the talk's parser → a Redis counter (Jedis).
 * Settings as in the other acking cases: parallelism 1, 1 worker, 1 acker, maxSpoutPending
 * 10,000, message timeout 30 s.
 *
 * <p>The topic is finite, so the window is by count, not time: from 10% to 90% of the
 * records acked (the consumer's start and the drain left out). The run then waits until
 * every record is acked, so that Redis holds every count when it exits, and gives up when
 * no record is acked for 60 s. Failed trees are those of the whole run.
 */
final class KafkaCase {
    static final String NAME = "kafka-redis-ack";

    private KafkaCase() {}

    static void run(String bootstrap, String topic, String group, String redis, long records) throws Exception {
        int colon = redis.lastIndexOf(':');
        if (colon < 0 || records < 10) {
            throw new IllegalArgumentException(NAME + " needs --bootstrap, --topic, --group, --redis HOST:PORT"
                    + " and --records N (at least 10)");
        }
        KafkaSpoutConfig<String, String> kafka = KafkaSpoutConfig.builder(bootstrap, topic)
                .setProp(ConsumerConfig.GROUP_ID_CONFIG, group)
                .build();
        TopologyBuilder b = new TopologyBuilder();
        b.setSpout("spout", new KafkaComponents.TimedKafkaSpout(kafka), 1);
        b.setBolt("parser", new KafkaComponents.KeysBolt(), 1).shuffleGrouping("spout");
        b.setBolt("counter", new KafkaComponents.RedisCountBolt(
                redis.substring(0, colon), Integer.parseInt(redis.substring(colon + 1))), 1)
                .shuffleGrouping("parser");

        Config conf = new Config();
        conf.setNumWorkers(1);
        conf.setNumAckers(1);
        conf.setMessageTimeoutSecs(30);
        conf.setMaxSpoutPending(10_000);
        LocalCluster cluster = new LocalCluster.Builder()
                .withDaemonConf(Config.STORM_LOCAL_HOSTNAME, "127.0.0.1")
                .build();
        cluster.submitTopology("bench", conf, b.createTopology());

        long lo = records / 10;
        long hi = records - records / 10;
        awaitAcked(lo, 120);
        Probe.COMPLETE_US.clear();
        Probe.measuring = true;
        long n0 = Probe.COMPLETED.get();
        long cpu0 = StormBench.cpuNanos();
        long t0 = System.nanoTime();
        awaitAcked(hi, 60);
        long n1 = Probe.COMPLETED.get();
        long t1 = System.nanoTime();
        long cpu1 = StormBench.cpuNanos();
        Probe.measuring = false;
        Thread.sleep(50); // let an ack that read `measuring` before the flip finish recording
        long p50 = Probe.COMPLETE_US.quantile(0.50);
        long p99 = Probe.COMPLETE_US.quantile(0.99);
        awaitAcked(records, 60);

        long n = n1 - n0;
        System.out.printf(Locale.ROOT,
                "{\"name\":\"%s\",\"throughput\":%.1f,\"complete_p50_us\":%d,\"complete_p99_us\":%d,"
                        + "\"cpu_s_per_million\":%.4f,\"peak_rss_kib\":%d,\"failed\":%d,\"acked\":%d}%n",
                NAME, n / ((t1 - t0) / 1e9), p50, p99, (cpu1 - cpu0) / 1e9 / (n / 1e6),
                StormBench.peakRssKib(), Probe.FAILED.get(), Probe.COMPLETED.get());
        System.out.flush();

        KillOptions now = new KillOptions();
        now.set_wait_secs(0);
        cluster.killTopologyWithOpts("bench", now);
        Thread.sleep(2000);
        Runtime.getRuntime().halt(0);
    }

    /** Waits until {@code target} records are acked; fails after {@code idleSeconds} without progress. */
    private static void awaitAcked(long target, int idleSeconds) throws InterruptedException {
        long seen = -1;
        long since = System.nanoTime();
        while (true) {
            long acked = Probe.COMPLETED.get();
            if (acked >= target) {
                return;
            }
            if (acked != seen) {
                seen = acked;
                since = System.nanoTime();
            } else if (System.nanoTime() - since > idleSeconds * 1_000_000_000L) {
                System.err.printf("%s: stuck at %d of %d records acked for %d s%n", NAME, acked, target, idleSeconds);
                Runtime.getRuntime().halt(1);
            }
            Thread.sleep(20);
        }
    }
}
