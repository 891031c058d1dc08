package org.egressproxy.net;

/**
 * Every handler name, in pipeline order (top = first to see inbound bytes).
 *
 * <pre>
 * client channel, every listener:
 *   idle        IdleStateHandler (timeouts.idle)
 *   tracker     ConnectionTracker: Connection record, active gauge, close event, idle close
 * tls-sni:
 *   sni         TlsSniHandler: reads the ClientHello, decides, connects; replaced by relay
 * http-proxy:
 *   tls         SslHandler, when the listener has tls: (an HTTPS proxy; stays for tunnels)
 *   http        ProxyHttpCodec: strict HTTP/1.1, head timeout (removed for a CONNECT tunnel)
 *   auth        ProxyAuthHandler: verifies Proxy-Authorization passwords off the event loop
 *               (removed for a tunnel)
 *   proxy       HttpProxyHandler: CONNECT (replaced by sni-check and relay for a tunnel)
 *   sni-check   TunnelSniCheck: the tunnel's ClientHello must name the CONNECT host
 *   forward     HttpForwarder: absolute-form requests (removed for a tunnel)
 * http-host:
 *   http        ProxyHttpCodec
 *   forward     HttpForwarder: each request to its Host
 * relay         Relay, once the upstream is connected
 * upstream channel:
 *   relay       Relay towards the client (after a ClientHello went through, it looks at the
 *               server's first record: on a HelloRetryRequest a sni-check goes on the client's
 *               channel for the second ClientHello)
 * </pre>
 */
public final class PipelineNames {
  public static final String IDLE = "idle";
  public static final String TRACKER = "tracker";
  public static final String SNI = "sni";
  public static final String TLS = "tls";
  public static final String HTTP = "http";
  public static final String AUTH = "auth";
  public static final String PROXY = "proxy";
  public static final String FORWARD = "forward";
  public static final String SNI_CHECK = "sni-check";
  public static final String RELAY = "relay";

  private PipelineNames() {}
}
