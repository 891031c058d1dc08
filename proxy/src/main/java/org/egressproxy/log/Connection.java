package org.egressproxy.log;

import java.time.Instant;
import java.util.List;
import org.egressproxy.match.IpLiteral;
import org.egressproxy.policy.Decision;

/**
 * What the proxy knows about one client connection (or one request on a kept-alive HTTP
 * connection): filled in as it learns it, logged at the decision and, for allowed traffic, at
 * close. Confined to the connection's event loop.
 */
public final class Connection {
  public final String listener;
  public final String client;
  /** The client's address, for matching {@code policy.sources[].clients}; null if unknown. */
  public final IpLiteral clientAddress;
  /**
   * Where the client sent the connection ({@code ip:port}) when a transparent listener took it
   * over: the destination the client chose, logged only; never connected to.
   */
  public final String originalDst;
  public final long startNanos = System.nanoTime();
  /** The client's source ({@code policy.sources}, or {@code default}) once identified. */
  public String source;
  /** The user or token name the client proved (or claimed, when refused) with its credentials. */
  public String user;
  /** The client connection this request record belongs to; null for the connection's own. */
  public final Connection parent;
  /** The source this client connection is counted under ({@code maxConnections}); or null. */
  public String countedSource;
  public String method;
  public String host;
  public int port;
  public String sni;
  public List<String> alpn;
  public Boolean ech;
  public Decision decision;
  /** Overrides the decision's reason (sni-mismatch, no-sni, bad-request, upstream-error, ...). */
  public String reason;
  public String upstream;
  public long bytesUp;
  public long bytesDown;
  /** Bring bytesUp / bytesDown up to date with a spliced direction; null when not splicing. */
  private Runnable splicedUp;
  private Runnable splicedDown;
  private boolean closeLogged;

  public Connection(String listener, String client) {
    this(listener, client, null, null);
  }

  public Connection(String listener, String client, IpLiteral clientAddress,
      String originalDst) {
    this(listener, client, clientAddress, originalDst, null);
  }

  private Connection(String listener, String client, IpLiteral clientAddress,
      String originalDst, Connection parent) {
    this.listener = listener;
    this.client = client;
    this.clientAddress = clientAddress;
    this.originalDst = originalDst;
    this.parent = parent;
  }

  /** A direction of this tunnel splices: {@code settle} brings its byte count up to date. */
  public void spliced(boolean up, Runnable settle) {
    if (up) {
      splicedUp = settle;
    } else {
      splicedDown = settle;
    }
  }

  /** Whether a direction of this tunnel splices (its bytes pass no handler). */
  public boolean splicing() {
    return splicedUp != null || splicedDown != null;
  }

  /** Brings the byte counts up to date with what spliced directions moved (event loop). */
  public void settleSpliced() {
    if (splicedUp != null) {
      splicedUp.run();
    }
    if (splicedDown != null) {
      splicedDown.run();
    }
  }

  /** A record for one request on this connection (kept-alive HTTP). */
  public Connection forRequest() {
    return new Connection(listener, client, clientAddress, originalDst, this);
  }

  /**
   * True the first time only: a connection's end can be seen from more than one place (its
   * set-up handler and its channel's end may both learn that the client went away), and it has
   * one close line.
   */
  public boolean firstClose() {
    boolean first = !closeLogged;
    closeLogged = true;
    return first;
  }

  /** The client connection's own record. */
  public Connection root() {
    return parent == null ? this : parent;
  }

  public String reasonId() {
    return reason != null ? reason : decision != null ? decision.reason().id() : null;
  }

  /** Allowed (or forwarded in report mode) and not refused afterwards. */
  public boolean allowed() {
    return decision != null && decision.allowed() && reason == null;
  }

  /** One JSON object: the contract's fields, absent when unknown. */
  public String toJson(String event, Instant now) {
    StringBuilder sb = new StringBuilder(512);
    sb.append("{\"ts\":\"");
    IsoInstant.append(sb, now);
    sb.append('"');
    str(sb, "event", event);
    str(sb, "listener", listener);
    str(sb, "client", client);
    str(sb, "source", source);
    str(sb, "user", user);
    str(sb, "originalDst", originalDst);
    str(sb, "method", method);
    str(sb, "host", host);
    if (port > 0) {
      sb.append(",\"port\":").append(port);
    }
    str(sb, "sni", sni);
    if (alpn != null) {
      sb.append(",\"alpn\":[");
      for (int i = 0; i < alpn.size(); i++) {
        if (i > 0) {
          sb.append(',');
        }
        quote(sb, alpn.get(i));
      }
      sb.append(']');
    }
    if (ech != null) {
      sb.append(",\"ech\":").append(ech);
    }
    boolean denied = reason != null || decision == null || !decision.allowed();
    str(sb, "decision", denied ? "deny" : "allow");
    if (decision != null && !decision.enforced() && reason == null) {
      sb.append(",\"enforced\":false");
    }
    str(sb, "reason", reasonId());
    if (decision != null && decision.rule() != null) {
      str(sb, "rule", decision.rule().pattern());
      str(sb, "catalog", decision.rule().catalog());
    }
    str(sb, "upstream", upstream);
    if ("close".equals(event)) {
      sb.append(",\"bytesUp\":").append(bytesUp);
      sb.append(",\"bytesDown\":").append(bytesDown);
      sb.append(",\"durationMs\":").append((System.nanoTime() - startNanos) / 1_000_000);
    }
    return sb.append('}').toString();
  }

  private static void str(StringBuilder sb, String key, String value) {
    if (value != null) {
      sb.append(",\"").append(key).append("\":");
      quote(sb, value);
    }
  }

  private static void quote(StringBuilder sb, String s) {
    Json.quote(sb, s);
  }
}
