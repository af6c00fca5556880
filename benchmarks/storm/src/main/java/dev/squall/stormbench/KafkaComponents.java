package dev.squall.stormbench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.storm.Config;
import org.apache.storm.kafka.spout.KafkaSpout;
import org.apache.storm.kafka.spout.KafkaSpoutConfig;
import org.apache.storm.spout.ISpoutOutputCollector;
import org.apache.storm.spout.SpoutOutputCollector;
import org.apache.storm.task.OutputCollector;
import org.apache.storm.task.TopologyContext;
import org.apache.storm.topology.BasicOutputCollector;
import org.apache.storm.topology.OutputFieldsDeclarer;
import org.apache.storm.topology.base.BaseBasicBolt;
import org.apache.storm.topology.base.BaseRichBolt;
import org.apache.storm.tuple.Fields;
import org.apache.storm.tuple.Tuple;
import org.apache.storm.tuple.Values;
import org.apache.storm.utils.TupleUtils;
import redis.clients.jedis.Jedis;
import redis.clients.jedis.Pipeline;
import redis.clients.jedis.Response;

/**
 * The Kafka case's components: storm-kafka-client's KafkaSpout as it is, the talk's parser
 * (what Squall's {@code json-keys} does with the talk's rules) and a Redis counter (what
 * Squall's {@code redis-counter} writes), through Jedis.
 */
final class KafkaComponents {
    private KafkaComponents() {}

    /**
     * KafkaSpout unchanged, with its collector wrapped to note each emit's time by message
     * id, so an ack gives the complete latency. KafkaSpout's ids are its own objects, so the
     * emit time cannot be the id as in the other cases. nextTuple, ack and fail run on the
     * spout's one executor thread, so a plain map does.
     */
    static final class TimedKafkaSpout extends KafkaSpout<String, String> {
        private transient Map<Object, Long> emitted;

        TimedKafkaSpout(KafkaSpoutConfig<String, String> config) {
            super(config);
        }

        @Override
        public void open(Map<String, Object> conf, TopologyContext context, SpoutOutputCollector collector) {
            emitted = new HashMap<>();
            super.open(conf, context, new SpoutOutputCollector(new Stamping(collector)));
        }

        @Override
        public void ack(Object msgId) {
            Long at = emitted.remove(msgId);
            if (at != null) {
                Probe.acked(at);
            }
            super.ack(msgId);
        }

        @Override
        public void fail(Object msgId) {
            emitted.remove(msgId);
            Probe.FAILED.incrementAndGet();
            super.fail(msgId);
        }

        private final class Stamping implements ISpoutOutputCollector {
            private final ISpoutOutputCollector inner;

            Stamping(ISpoutOutputCollector inner) {
                this.inner = inner;
            }

            @Override
            public List<Integer> emit(String streamId, List<Object> tuple, Object messageId) {
                if (messageId != null) {
                    emitted.put(messageId, System.nanoTime());
                }
                return inner.emit(streamId, tuple, messageId);
            }

            @Override
            public void emitDirect(int taskId, String streamId, List<Object> tuple, Object messageId) {
                if (messageId != null) {
                    emitted.put(messageId, System.nanoTime());
                }
                inner.emitDirect(taskId, streamId, tuple, messageId);
            }

            @Override
            public long getPendingCount() {
                return inner.getPendingCount();
            }

            @Override
            public void flush() {
                inner.flush();
            }

            @Override
            public void reportError(Throwable error) {
                inner.reportError(error);
            }
        }
    }

    /**
     * The talk's keys of one edit (the record's {@code value}), in its order: {@code isanon_}
     * + is_anon, anon_anon/anon_loggedin, bot_bot/bot_human, {@code action_} + action, and
     * {@code country_} + geo_ip.country_name when present; booleans and null spelled as
     * Python does. An edit that is not an object, or lacks a required value, goes to the
     * {@code errors} stream whole, with no keys.
     */
    static final class KeysBolt extends BaseBasicBolt {
        private transient ObjectMapper json;

        @Override
        public void prepare(Map<String, Object> conf, TopologyContext context) {
            json = new ObjectMapper();
        }

        @Override
        public void execute(Tuple input, BasicOutputCollector out) {
            String text = input.getStringByField("value");
            List<String> keys;
            try {
                keys = keysOf(json.readTree(text));
            } catch (IOException | IllegalArgumentException e) {
                out.emit("errors", new Values(text, String.valueOf(e.getMessage())));
                return;
            }
            for (String key : keys) {
                out.emit(new Values(key));
            }
        }

        static List<String> keysOf(JsonNode edit) {
            if (edit == null || !edit.isObject()) {
                throw new IllegalArgumentException("not a JSON object");
            }
            List<String> keys = new ArrayList<>(5);
            keys.add("isanon_" + spelled(edit.get("is_anon"), "is_anon"));
            keys.add(truthy(edit.get("is_anon")) ? "anon_anon" : "anon_loggedin");
            keys.add(truthy(edit.get("is_bot")) ? "bot_bot" : "bot_human");
            keys.add("action_" + spelled(edit.get("action"), "action"));
            JsonNode geo = edit.get("geo_ip");
            JsonNode country = geo == null ? null : geo.get("country_name");
            if (country != null && !country.isNull()) {
                keys.add("country_" + spelled(country, "geo_ip.country_name"));
            }
            return keys;
        }

        /** A value as a key part: text as it is, numbers as JSON spells them, Python's True/False/None. */
        static String spelled(JsonNode v, String path) {
            if (v == null) {
                throw new IllegalArgumentException("no " + path + " in the event");
            }
            if (v.isTextual()) {
                return v.textValue();
            }
            if (v.isBoolean()) {
                return v.booleanValue() ? "True" : "False";
            }
            if (v.isNull()) {
                return "None";
            }
            if (v.isNumber()) {
                return v.toString();
            }
            throw new IllegalArgumentException(path + " is an array or object, not a value for a key");
        }

        /** Python's truthiness; a missing value is false. */
        static boolean truthy(JsonNode v) {
            if (v == null || v.isNull()) {
                return false;
            }
            if (v.isBoolean()) {
                return v.booleanValue();
            }
            if (v.isNumber()) {
                return v.doubleValue() != 0;
            }
            if (v.isTextual()) {
                return !v.textValue().isEmpty();
            }
            return v.size() > 0;
        }

        @Override
        public void declareOutputFields(OutputFieldsDeclarer d) {
            d.declare(new Fields("key"));
            d.declareStream("errors", new Fields("event", "error"));
        }
    }

    /**
     * Counts {@code category_value} keys in Redis sorted sets as Squall's redis-counter does
     * at its defaults: per flush one {@code ZINCRBY category n value} per distinct key, and
     * for {@code action_a} also {@code ZINCRBY actions} and {@code ZADD action <unix time> a};
     * pipelined, and the batch's tuples acked only once Redis answered every write without
     * an error (failed, for the spout to replay, otherwise). A flush happens when 1,000
     * tuples wait and on each tick tuple (every second: Storm's finest tick), since a Storm
     * bolt cannot see that its input queue ran dry.
     */
    static final class RedisCountBolt extends BaseRichBolt {
        static final int BATCH = 1000;
        private final String host;
        private final int port;
        private transient Jedis jedis;
        private transient OutputCollector out;
        private transient List<Tuple> pending;

        RedisCountBolt(String host, int port) {
            this.host = host;
            this.port = port;
        }

        @Override
        public void prepare(Map<String, Object> conf, TopologyContext context, OutputCollector collector) {
            out = collector;
            pending = new ArrayList<>(BATCH);
            jedis = new Jedis(host, port);
        }

        @Override
        public void execute(Tuple input) {
            if (TupleUtils.isTick(input)) {
                flush();
                return;
            }
            pending.add(input);
            if (pending.size() >= BATCH) {
                flush();
            }
        }

        private void flush() {
            if (pending.isEmpty()) {
                return;
            }
            Map<String, Map<String, Long>> counts = new LinkedHashMap<>();
            Set<String> stamped = new LinkedHashSet<>();
            for (Tuple t : pending) {
                String key = t.getString(0);
                int at = key.indexOf('_');
                if (at < 0) {
                    continue; // no category: acked without a write, as redis-counter does
                }
                String category = key.substring(0, at);
                String value = key.substring(at + 1);
                if (category.equals("action")) {
                    counts.computeIfAbsent("actions", k -> new HashMap<>()).merge(value, 1L, Long::sum);
                    stamped.add(value);
                } else {
                    counts.computeIfAbsent(category, k -> new HashMap<>()).merge(value, 1L, Long::sum);
                }
            }
            double now = System.currentTimeMillis() / 1000;
            try {
                List<Response<?>> replies = new ArrayList<>();
                Pipeline p = jedis.pipelined();
                counts.forEach((set, members) -> members.forEach((member, n) ->
                        replies.add(p.zincrby(set, n, member))));
                for (String member : stamped) {
                    replies.add(p.zadd("action", now, member));
                }
                p.sync();
                for (Response<?> r : replies) {
                    r.get(); // throws on an error reply
                }
                pending.forEach(out::ack);
            } catch (RuntimeException e) {
                pending.forEach(out::fail);
                jedis.close();
                jedis = new Jedis(host, port);
            }
            pending.clear();
        }

        @Override
        public void cleanup() {
            jedis.close();
        }

        @Override
        public Map<String, Object> getComponentConfiguration() {
            Map<String, Object> c = new HashMap<>();
            c.put(Config.TOPOLOGY_TICK_TUPLE_FREQ_SECS, 1);
            return c;
        }

        @Override
        public void declareOutputFields(OutputFieldsDeclarer d) {}
    }
}
