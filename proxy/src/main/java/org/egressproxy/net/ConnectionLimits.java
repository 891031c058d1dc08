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
    AtomicInteger[] mine = new AtomicInteger[1];
    perClient.compute(client, (k, v) -> {
      AtomicInteger c = v == null ? new AtomicInteger() : v;
      mine[0] = c;
      c.incrementAndGet();
      return c;
    });
    if (mine[0].get() > limits.maxConnectionsPerClient()) {
      release(client);
      return Refusal.PER_CLIENT;
    }
    return null;
  }

  /** The end of an admitted connection. */
  public void release(String client) {
    total.decrementAndGet();
    perClient.computeIfPresent(client, (k, v) -> v.decrementAndGet() <= 0 ? null : v);
  }

  public int open() {
    return total.get();
  }
}
