package org.egressproxy.metrics;

import com.github.benmanes.caffeine.cache.Cache;
import com.github.benmanes.caffeine.cache.Caffeine;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.LongAdder;

/**
 * Denied destinations with counts, so an operator sees at a glance what a cluster needs that
 * the policy does not allow. Bounded in entries and in bytes: at most {@value #MAX_KEYS}
 * destinations are kept, each at most {@value #MAX_KEY} characters. Which ones stay is Caffeine's
 * W-TinyLFU's choice: a destination denied often is kept, and a flood of names denied once each
 * (a scan, random subdomains) does not push it out; a destination first denied late still gets
 * in once it is denied more often than the least of those kept. A count runs from when its
 * destination got in, so it can be below the denials since start.
 */
public final class TopDenied {
  static final int MAX_KEYS = 1_000;
  /** A DNS name's 253 characters, a colon and a port. */
  static final int MAX_KEY = 253 + 6;

  private final Cache<String, LongAdder> counts = Caffeine.newBuilder()
      .maximumSize(MAX_KEYS)
      .executor(Runnable::run) // evicted on the recording thread: no work left to a pool
      .build();

  /** One denial of {@code host} ({@code port} 0: none), host as the client gave it. */
  public void record(String host, int port) {
    String key = port > 0 ? bounded(host) + ":" + port : bounded(host);
    counts.get(key, k -> new LongAdder()).increment();
  }

  /**
   * {@code host} if it is no longer than a DNS name, else cut there and marked: a refused
   * request's raw target can be kilobytes long.
   */
  private static String bounded(String host) {
    return host.length() <= 253 ? host : host.substring(0, 252) + "\u2026";
  }

  /** The {@code n} most denied destinations, most first. */
  public List<Map.Entry<String, Long>> top(int n) {
    return counts.asMap().entrySet().stream()
        .map(e -> Map.entry(e.getKey(), e.getValue().sum()))
        .sorted(Map.Entry.<String, Long>comparingByValue(Comparator.reverseOrder())
            .thenComparing(Map.Entry.comparingByKey()))
        .limit(n)
        .toList();
  }

  /** Destinations kept now. */
  long size() {
    counts.cleanUp();
    return counts.estimatedSize();
  }
}
