package org.egressproxy.net;

import io.netty.channel.Channel;
import io.netty.util.AttributeKey;
import org.egressproxy.config.Config;
import org.egressproxy.log.Connection;
import org.egressproxy.log.DecisionLog;
import org.egressproxy.metrics.ProxyMetrics;
import org.egressproxy.policy.Decider;
import org.egressproxy.tunnel.UpstreamConnector;

/**
 * What every connection handler shares: the decider (current policy behind the cache), the
 * upstream connector, the decision log, the metrics and the settings that do not change on
 * reload. Immutable references; the policy inside the decider is swapped atomically.
 */
public record ProxyRuntime(
    Decider decider,
    UpstreamConnector connector,
    DecisionLog log,
    ProxyMetrics metrics,
    Config.Timeouts timeouts,
    Config.Tunnel tunnel,
    ConnectionLimits limits) {

  /** The client connection's record, set by {@link ConnectionTracker}. */
  public static final AttributeKey<Connection> CONNECTION = AttributeKey.valueOf("egress.conn");

  public static Connection connection(Channel ch) {
    return ch.attr(CONNECTION).get();
  }

  /** Logs and counts a decision (allow or deny) for {@code c}. */
  public void decided(Connection c) {
    metrics.decision(c.listener, c.allowed(), c.reasonId());
    if (!c.allowed() && c.host != null) {
      metrics.topDenied().record(c.host + (c.port > 0 ? ":" + c.port : ""));
    }
    log.decision(c);
  }
}
