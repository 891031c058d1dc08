package org.egressproxy.metrics;

import com.github.benmanes.caffeine.cache.Cache;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.Timer;
import io.micrometer.core.instrument.binder.cache.CaffeineCacheMetrics;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.ToDoubleFunction;

/**
 * The contract's metrics, registered once. Names here are Micrometer's; Prometheus renders
 * {@code egress.decisions} as {@code egress_decisions_total}, and so on.
 *
 * <ul>
 *   <li>{@code egress_decisions_total{listener,decision,reason,source}} ({@code source} is the
 *       client's {@code policy.sources} name, {@code default} without sources, {@code none}
 *       when the client was refused before it was identified)
 *   <li>{@code egress_connections_active{listener}}
 *   <li>{@code egress_bytes_total{listener,direction,source}} ({@code up} = client to
 *       upstream; tunnels and forwarded HTTP bodies)
 *   <li>{@code egress_upstream_connect_seconds} (histogram)
 *   <li>{@code cache_gets_total{cache="decisions",result}} (Micrometer's Caffeine binder)
 *   <li>{@code egress_decision_log_dropped_total}
 * </ul>
 */
public final class ProxyMetrics {
  private final PrometheusMeterRegistry registry =
      new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
  private final Map<String, Counter> decisions = new ConcurrentHashMap<>();
  private final Map<String, Listener> listeners = new ConcurrentHashMap<>();
  private final Timer connect;
  private final TopDenied topDenied = new TopDenied();

  private final Map<String, Bytes> bytes = new ConcurrentHashMap<>();

  /** Per-listener meters, looked up once per connection. */
  public static final class Listener {
    public final AtomicInteger active = new AtomicInteger();
  }

  /**
   * {@code egress_bytes_total{listener,direction,source}} for one listener and source, looked
   * up once per tunnel or request.
   */
  public record Bytes(Counter up, Counter down) {}

  public ProxyMetrics() {
    new io.micrometer.core.instrument.binder.jvm.JvmMemoryMetrics().bindTo(registry);
    new io.micrometer.core.instrument.binder.jvm.JvmGcMetrics().bindTo(registry);
    new io.micrometer.core.instrument.binder.jvm.JvmThreadMetrics().bindTo(registry);
    new io.micrometer.core.instrument.binder.system.ProcessorMetrics().bindTo(registry);
    new io.micrometer.core.instrument.binder.system.UptimeMetrics().bindTo(registry);
    new io.micrometer.core.instrument.binder.system.FileDescriptorMetrics().bindTo(registry);
    // The allocator the channels use (Netty 4.2: the adaptive one, unless
    // io.netty.allocator.type says otherwise) - not PooledByteBufAllocator.DEFAULT, which would
    // report an idle pool while the buffers in use went unseen.
    if (io.netty.buffer.ByteBufAllocator.DEFAULT
        instanceof io.netty.buffer.ByteBufAllocatorMetricProvider used) {
      new io.micrometer.core.instrument.binder.netty4.NettyAllocatorMetrics(used)
          .bindTo(registry);
    }
    connect = Timer.builder("egress.upstream.connect")
        .description("Time to establish the upstream TCP connection")
        .publishPercentileHistogram()
        .register(registry);
  }

  public PrometheusMeterRegistry registry() {
    return registry;
  }

  public Bytes bytes(String listener, String source) {
    String src = source == null ? "none" : source;
    return bytes.computeIfAbsent(listener + '\0' + src, k -> new Bytes(
        Counter.builder("egress.bytes").tag("listener", listener).tag("direction", "up")
            .tag("source", src).description("Bytes relayed; up = client to upstream")
            .register(registry),
        Counter.builder("egress.bytes").tag("listener", listener).tag("direction", "down")
            .tag("source", src).description("Bytes relayed; up = client to upstream")
            .register(registry)));
  }

  public Listener listener(String name) {
    return listeners.computeIfAbsent(name, n -> {
      Listener l = new Listener();
      Gauge.builder("egress.connections.active", l.active, AtomicInteger::get)
          .tag("listener", n).description("Open client connections").register(registry);
      return l;
    });
  }

  public TopDenied topDenied() {
    return topDenied;
  }

  /** Open connections per listener. */
  public Map<String, Integer> activeByListener() {
    Map<String, Integer> out = new java.util.TreeMap<>();
    listeners.forEach((name, l) -> out.put(name, l.active.get()));
    return out;
  }

  public void decision(String listener, String source, boolean allowed, String reason) {
    String src = source == null ? "none" : source;
    String key = listener + '\0' + src + '\0' + allowed + '\0' + reason;
    decisions.computeIfAbsent(key, k -> Counter.builder("egress.decisions")
        .tag("listener", listener).tag("decision", allowed ? "allow" : "deny")
        .tag("reason", reason).tag("source", src).description("Decisions made")
        .register(registry)).increment();
  }

  /** {@code egress_limit_rejections_total{listener,limit}}: connections refused by a limit. */
  public void limitRejected(String listener, String limit) {
    Counter.builder("egress.limit.rejections").tag("listener", listener).tag("limit", limit)
        .description("Client connections refused by a limit").register(registry).increment();
  }

  /** {@code egress_config_reloads_total{result="ok|error"}}. */
  public void reload(boolean ok) {
    Counter.builder("egress.config.reloads").tag("result", ok ? "ok" : "error")
        .description("Configuration reloads").register(registry).increment();
  }

  public Timer upstreamConnect() {
    return connect;
  }

  public void bindDecisionCache(Cache<?, ?> cache) {
    CaffeineCacheMetrics.monitor(registry, cache, "decisions");
  }

  public <T> void bindDecisionLogDrops(T log, ToDoubleFunction<T> dropped) {
    FunctionCounter.builder("egress.decision.log.dropped", log, dropped)
        .description("Decision log lines that could not be written").register(registry);
  }

  /** The Prometheus text exposition. */
  public String scrape() {
    return registry.scrape();
  }
}
