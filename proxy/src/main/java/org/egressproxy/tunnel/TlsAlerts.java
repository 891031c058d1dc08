package org.egressproxy.tunnel;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;

/** TLS alert records the proxy sends without terminating TLS. */
public final class TlsAlerts {
  public static final int ACCESS_DENIED = 49;
  public static final int INTERNAL_ERROR = 80;

  private TlsAlerts() {}

  /** A fatal alert record: type 21, version TLS 1.2 (as TLS 1.3 records say), level 2, code. */
  public static ByteBuf fatal(ByteBufAllocator alloc, int description) {
    ByteBuf b = alloc.buffer(7);
    b.writeByte(21).writeShort(0x0303).writeShort(2).writeByte(2).writeByte(description);
    return b;
  }
}
