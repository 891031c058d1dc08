package org.egressproxy.tunnel;

import org.egressproxy.log.Connection;
import org.egressproxy.net.ProxyRuntime;

/** Turning an upstream failure into the connection's decision and reason. */
final class Upstreams {
  private Upstreams() {}

  static void failed(ProxyRuntime runtime, Connection c, Throwable cause) {
    if (cause instanceof UpstreamConnector.UpstreamException u
        && u.failure() == UpstreamConnector.Failure.PRIVATE_DESTINATION) {
      c.decision = runtime.decider().policy().privateDestination();
      c.reason = null;
    } else if (cause instanceof UpstreamConnector.UpstreamException u
        && u.failure() == UpstreamConnector.Failure.LOOP) {
      c.reason = "loop";
    } else if (cause instanceof UpstreamConnector.UpstreamException u
        && u.failure() == UpstreamConnector.Failure.DNS_TIMEOUT) {
      c.reason = "dns-timeout";
    } else if (cause instanceof UpstreamConnector.UpstreamException u
        && u.failure() == UpstreamConnector.Failure.TIMEOUT) {
      c.reason = "upstream-timeout"; // as for a CONNECT
    } else {
      c.reason = "upstream-error";
    }
  }
}
