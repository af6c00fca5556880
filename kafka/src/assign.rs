//! Which partitions a spout task reads: storm-kafka-client's `RoundRobinManualPartitioner`.

/// A topic and partition.
pub type TopicPartition = (String, i32);

/// The partitions of task `index` of `tasks`: every partition sorted by (topic,
/// partition), the task taking those at positions ≡ `index` mod `tasks`. Every task
/// computes the same split from the same partition list, so the tasks of a spout (on any
/// worker) cover each partition exactly once.
pub fn partitions_for_task(all: &[TopicPartition], index: usize, tasks: usize) -> Vec<TopicPartition> {
    let mut sorted = all.to_vec();
    sorted.sort();
    sorted.dedup();
    let tasks = tasks.max(1);
    sorted
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % tasks == index % tasks)
        .map(|(_, tp)| tp)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn all(topics: &[(&str, i32)]) -> Vec<TopicPartition> {
        topics
            .iter()
            .flat_map(|(t, n)| (0..*n).map(move |p| ((*t).to_owned(), p)))
            .collect()
    }

    #[test]
    fn every_partition_goes_to_exactly_one_task() {
        let parts = all(&[("b", 3), ("a", 4)]);
        for tasks in 1..=8 {
            let mut seen = BTreeSet::new();
            for i in 0..tasks {
                for tp in partitions_for_task(&parts, i, tasks) {
                    assert!(seen.insert(tp), "{tasks} tasks: a partition twice");
                }
            }
            assert_eq!(seen.len(), 7, "{tasks} tasks");
        }
    }

    #[test]
    fn round_robin_over_the_sorted_list_whatever_the_order_given() {
        let mut parts = all(&[("b", 2), ("a", 2)]);
        parts.reverse();
        let a = |p| ("a".to_owned(), p);
        let b = |p| ("b".to_owned(), p);
        assert_eq!(partitions_for_task(&parts, 0, 2), vec![a(0), b(0)]);
        assert_eq!(partitions_for_task(&parts, 1, 2), vec![a(1), b(1)]);
        assert_eq!(partitions_for_task(&parts, 2, 3), vec![b(0)]);
        assert_eq!(partitions_for_task(&parts, 0, 3), vec![a(0), b(1)]);
    }
}
