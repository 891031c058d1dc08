package org.egressproxy.metrics;

import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.LongAdder;

/**
 * Denied destinations since start, with counts, so an operator sees at a glance what a cluster
 * needs that the policy does not allow. Bounded: past {@value #MAX_KEYS} distinct destinations,
 * new ones are counted together under "(other)".
 */
public final class TopDenied {
  static final int MAX_KEYS = 10_000;
  static final String OTHER = "(other)";

  private final Map<String, LongAdder> counts = new ConcurrentHashMap<>();

  public void record(String destination) {
    LongAdder a = counts.get(destination);
    if (a == null) {
      String key = counts.size() >= MAX_KEYS ? OTHER : destination;
      a = counts.computeIfAbsent(key, k -> new LongAdder());
    }
    a.increment();
  }

  /** The {@code n} most denied destinations, most first. */
  public List<Map.Entry<String, Long>> top(int n) {
    return counts.entrySet().stream()
        .map(e -> Map.entry(e.getKey(), e.getValue().sum()))
        .sorted(Map.Entry.<String, Long>comparingByValue(Comparator.reverseOrder())
            .thenComparing(Map.Entry.comparingByKey()))
        .limit(n)
        .toList();
  }
}
