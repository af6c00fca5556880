package dev.squall.stormbench;

import java.util.HashMap;
import java.util.Map;
import org.apache.storm.spout.SpoutOutputCollector;
import org.apache.storm.task.OutputCollector;
import org.apache.storm.task.ShellBolt;
import org.apache.storm.task.TopologyContext;
import org.apache.storm.topology.BasicOutputCollector;
import org.apache.storm.topology.IRichBolt;
import org.apache.storm.topology.OutputFieldsDeclarer;
import org.apache.storm.topology.base.BaseBasicBolt;
import org.apache.storm.topology.base.BaseRichBolt;
import org.apache.storm.topology.base.BaseRichSpout;
import org.apache.storm.tuple.Fields;
import org.apache.storm.tuple.Tuple;
import org.apache.storm.tuple.Values;

/**
 * The components of squall-bench's cases, written against Storm's API. A reliable spout's
 * message id is its emit time (System.nanoTime), so the complete latency needs no map.
 */
final class Components {
    private Components() {}

    /** The same 100-byte text on every tuple (Squall's `const`). */
    static final class ConstSpout extends BaseRichSpout {
        private final boolean reliable;
        private final String payload = "x".repeat(100);
        private transient SpoutOutputCollector out;

        ConstSpout(boolean reliable) {
            this.reliable = reliable;
        }

        @Override
        public void open(Map<String, Object> conf, TopologyContext context, SpoutOutputCollector collector) {
            out = collector;
        }

        @Override
        public void nextTuple() {
            if (reliable) {
                out.emit(new Values(payload), System.nanoTime());
            } else {
                out.emit(new Values(payload));
            }
        }

        @Override
        public void ack(Object msgId) {
            Probe.acked((Long) msgId);
        }

        @Override
        public void fail(Object msgId) {
            Probe.FAILED.incrementAndGet();
        }

        @Override
        public void declareOutputFields(OutputFieldsDeclarer d) {
            d.declare(new Fields("payload"));
        }
    }

    /** Storm's classic five sentences, one per tuple (Squall's `random-sentence`). */
    static final class SentenceSpout extends BaseRichSpout {
        static final String[] SENTENCES = {
            "the cow jumped over the moon",
            "an apple a day keeps the doctor away",
            "four score and seven years ago",
            "snow white and the seven dwarfs",
            "i am at two with nature",
        };
        private transient SpoutOutputCollector out;
        private long next;

        @Override
        public void open(Map<String, Object> conf, TopologyContext context, SpoutOutputCollector collector) {
            out = collector;
        }

        /** A well-mixed pick from the tuple number (splitmix64's finaliser). */
        static String sentenceFor(long i) {
            long z = i + 0x9E3779B97F4A7C15L;
            z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
            z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
            z ^= z >>> 31;
            return SENTENCES[(int) Long.remainderUnsigned(z, SENTENCES.length)];
        }

        @Override
        public void nextTuple() {
            out.emit(new Values(sentenceFor(next++)), System.nanoTime());
        }

        @Override
        public void ack(Object msgId) {
            Probe.acked((Long) msgId);
        }

        @Override
        public void fail(Object msgId) {
            Probe.FAILED.incrementAndGet();
        }

        @Override
        public void declareOutputFields(OutputFieldsDeclarer d) {
            d.declare(new Fields("sentence"));
        }
    }

    /** Re-emits each input anchored to it, then acks it (Squall's `identity`). */
    static final class IdBolt extends BaseRichBolt {
        private transient OutputCollector out;

        @Override
        public void prepare(Map<String, Object> conf, TopologyContext context, OutputCollector collector) {
            out = collector;
        }

        @Override
        public void execute(Tuple input) {
            out.emit(input, input.getValues());
            out.ack(input);
        }

        @Override
        public void declareOutputFields(OutputFieldsDeclarer d) {
            d.declare(new Fields("payload"));
        }
    }

    /** Acks and drops every input (Squall's `null`); counts them when acking is off. */
    static final class NullBolt extends BaseRichBolt {
        private final boolean counts;
        private transient OutputCollector out;

        NullBolt(boolean counts) {
            this.counts = counts;
        }

        @Override
        public void prepare(Map<String, Object> conf, TopologyContext context, OutputCollector collector) {
            out = collector;
        }

        @Override
        public void execute(Tuple input) {
            out.ack(input);
            if (counts) {
                Probe.COMPLETED.incrementAndGet();
            }
        }

        @Override
        public void declareOutputFields(OutputFieldsDeclarer d) {}
    }

    /** One tuple per word, anchored; acked on return (Squall's `split-words`). */
    static final class SplitBolt extends BaseBasicBolt {
        @Override
        public void execute(Tuple input, BasicOutputCollector out) {
            for (String word : input.getString(0).split(" ")) {
                out.emit(new Values(word));
            }
        }

        @Override
        public void declareOutputFields(OutputFieldsDeclarer d) {
            d.declare(new Fields("word"));
        }
    }

    /** Counts by word in memory and emits the running count (Squall's `count`). */
    static final class CountBolt extends BaseBasicBolt {
        private final Map<String, Long> counts = new HashMap<>();

        @Override
        public void execute(Tuple input, BasicOutputCollector out) {
            String word = input.getString(0);
            long n = counts.merge(word, 1L, Long::sum);
            out.emit(new Values(word, n));
        }

        @Override
        public void declareOutputFields(OutputFieldsDeclarer d) {
            d.declare(new Fields("word", "count"));
        }
    }

    /** The pystorm bolt Squall's multilang bench runs: `streamparse_run squall_bench.PassBolt`. */
    static final class PassShellBolt extends ShellBolt implements IRichBolt {
        PassShellBolt(String streamparseRun, String pythonDir) {
            super(streamparseRun, "squall_bench.PassBolt");
            // Run in the JVM's directory, not the topology's resources dir; find the module
            // the way Squall does (its working directory is multilang/python).
            changeChildCWD(false);
            HashMap<String, String> env = new HashMap<>();
            env.put("PYTHONPATH", pythonDir);
            setEnv(env);
        }

        @Override
        public void declareOutputFields(OutputFieldsDeclarer d) {
            d.declare(new Fields("value"));
        }

        @Override
        public Map<String, Object> getComponentConfiguration() {
            return null;
        }
    }
}
