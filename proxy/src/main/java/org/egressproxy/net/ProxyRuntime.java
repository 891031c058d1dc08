package org.egressproxy.net;

import io.netty.channel.Channel;
import io.netty.util.AttributeKey;
import org.egressproxy.config.Config;
import org.egressproxy.log.Connection;
import org.egressproxy.log.DecisionLog;
import org.egressproxy.metrics.ProxyMetrics;
import org.egressproxy.auth.Credential;
import org.egressproxy.policy.Decider;
import org.egressproxy.policy.Sources;
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

  /**
   * Identifies {@code c}'s client (its source, and the user or token it proved) and records it on
   * {@code c}; a refusal also becomes {@code c}'s reason. Without {@code policy.sources} this is
   * the one default source at no cost.
   *
   * @param proxyAuthorization the request's {@code Proxy-Authorization} value, or null
   * @param canAuthenticate true on the http-proxy listener, where a 407 can ask for credentials;
   *     the header's password was verified ahead by {@code ProxyAuthHandler}, so this is a cache
   *     hit
   */
  public Sources.Identity identify(Connection c, String proxyAuthorization,
      boolean canAuthenticate) {
    Sources s = decider.sources();
    if (!s.configured()) {
      Sources.Identity everyone = s.identify(null, Credential.NONE, false);
      c.source = everyone.source().name();
      return everyone;
    }
    Credential presented = canAuthenticate ? s.credentials().verify(proxyAuthorization)
        : Credential.NONE;
    Sources.Identity id = s.identify(c.clientAddress, presented, canAuthenticate);
    Connection root = c.root();
    if (id.refusal() == null && root.countedSource == null) {
      // The connection counts under the first source it is placed in, until it closes.
      Sources.Source src = id.source();
      if (!limits.admitSource(src.name(), src.maxConnections())) {
        metrics.limitRejected(c.listener, "source");
        id = src.overLimit(id.user());
      } else {
        root.countedSource = src.name();
      }
    }
    c.source = id.source() == null ? null : id.source().name();
    c.user = id.user();
    if (id.refusal() != null) {
      c.reason = id.refusal();
    }
    return id;
  }

  /** Logs and counts a decision (allow or deny) for {@code c}. */
  public void decided(Connection c) {
    metrics.decision(c.listener, c.source, c.allowed(), c.reasonId());
    if (!c.allowed() && c.host != null) {
      metrics.topDenied().record(c.host, c.port);
    }
    log.decision(c);
  }
}
