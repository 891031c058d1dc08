package org.egressproxy.tunnel;

import io.netty.buffer.ByteBuf;

/**
 * Whether a server's first bytes are a HelloRetryRequest: a ServerHello whose random is RFC
 * 8446's fixed value (section 4.1.3). The first 43 bytes of the record tell.
 */
final class HelloRetry {
  /** The record's first bytes are not there yet. */
  static final int MORE = 0;
  /** Not a HelloRetryRequest (or not TLS). */
  static final int NO = 1;
  /** A HelloRetryRequest. */
  static final int YES = 2;

  /** SHA-256 of "HelloRetryRequest": the random of every HelloRetryRequest. */
  private static final byte[] RANDOM = java.util.HexFormat.of().parseHex(
      "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c");
  /** Record header (5), handshake type (1) and length (3), legacy_version (2). */
  private static final int RANDOM_AT = 11;
  /** The bytes that tell. */
  static final int HEAD = RANDOM_AT + RANDOM.length;

  private HelloRetry() {}

  /** {@link #MORE}, {@link #NO} or {@link #YES} for the readable bytes of {@code in}. */
  static int verdict(ByteBuf in) {
    int at = in.readerIndex();
    if (!in.isReadable() || in.getUnsignedByte(at) != 0x16) {
      return in.isReadable() ? NO : MORE;
    }
    if (in.readableBytes() < HEAD) {
      return MORE;
    }
    if (in.getUnsignedByte(at + 5) != 2) {
      return NO;
    }
    for (int i = 0; i < RANDOM.length; i++) {
      if (in.getByte(at + RANDOM_AT + i) != RANDOM[i]) {
        return NO;
      }
    }
    return YES;
  }
}
