package org.egressproxy.net;

/**
 * The user event every open client connection gets when the proxy starts draining (SIGTERM):
 * HTTP connections with no request in flight close at once, busy ones after their answer;
 * tunnels go on until they end or the drain time is up.
 */
public enum Drain {
  INSTANCE
}
