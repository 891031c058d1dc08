package org.egressproxy.net;

import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import org.egressproxy.config.Config;

/**
 * Open client connections, in total and per client address, against {@code limits:}. A
 * connection over a limit is refused at once, so one noisy client cannot take the proxy from the
 * others. Entries for addresses with no connection left are removed: memory follows the clients.
 */
public final class ConnectionLimits {
  /** Which limit refused a connection; {@code null} when it was admitted. */
  public enum Refusal {
    TOTAL("connections"),
    PER_CLIENT("per-client");

    public final String id;

    Refusal(String id) {
      this.id = id;
    }
  }

  private final Config.Limits limits;
  private final AtomicInteger total = new AtomicInteger();
  private final ConcurrentHashMap<String, AtomicInteger> perClient = new ConcurrentHashMap<>();
  private final ConcurrentHashMap<String, AtomicInteger> perSource = new ConcurrentHashMap<>();

  public ConnectionLimits(Config.Limits limits) {
    this.limits = limits;
  }

  public Config.Limits limits() {
    return limits;
  }

  /** Counts a new connection from {@code client}, or refuses it (and counts nothing). */
  public Refusal admit(String client) {
    if (total.incrementAndGet() > limits.maxConnections()) {
      total.decrementAndGet();
      return Refusal.TOTAL;
    }
    if (!count(perClient, client, limits.maxConnectionsPerClient())) {
      total.decrementAndGet();
      return Refusal.PER_CLIENT;
    }
    return null;
  }

  /** The end of an admitted connection. */
  public void release(String client) {
    total.decrementAndGet();
    perClient.computeIfPresent(client, (k, v) -> v.decrementAndGet() <= 0 ? null : v);
  }

  /**
   * Counts a client connection placed in {@code source}, or returns false (counting nothing)
   * when the source has {@code max} already. Counts survive reloads: they follow connections.
   */
  public boolean admitSource(String source, int max) {
    return count(perSource, source, max);
  }

  /** The end of a connection admitted by {@link #admitSource}. */
  public void releaseSource(String source) {
    perSource.computeIfPresent(source, (k, v) -> v.decrementAndGet() <= 0 ? null : v);
  }

  private static boolean count(ConcurrentHashMap<String, AtomicInteger> map, String key,
      int max) {
    AtomicInteger[] mine = new AtomicInteger[1];
    map.compute(key, (k, v) -> {
      AtomicInteger c = v == null ? new AtomicInteger() : v;
      mine[0] = c;
      c.incrementAndGet();
      return c;
    });
    if (mine[0].get() > max) {
      map.computeIfPresent(key, (k, v) -> v.decrementAndGet() <= 0 ? null : v);
      return false;
    }
    return true;
  }

  public int open() {
    return total.get();
  }
}
