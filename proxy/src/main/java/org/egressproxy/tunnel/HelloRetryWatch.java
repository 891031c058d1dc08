package org.egressproxy.tunnel;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.ByteToMessageDecoder;
import java.util.List;

/**
 * On a tunnel's upstream channel, after the client's ClientHello went through: looks at the
 * server's first record - 43 bytes at most, held back only until they are in - and, when it is
 * a HelloRetryRequest (a ServerHello whose random is RFC 8446's fixed value, section 4.1.3),
 * runs {@code onRetry} before the record goes on to the client, so that the client's second
 * ClientHello meets a check. Then it removes itself, every byte passed on unchanged.
 */
final class HelloRetryWatch extends ByteToMessageDecoder {
  /** SHA-256 of "HelloRetryRequest": the random of every HelloRetryRequest. */
  private static final byte[] HRR_RANDOM = java.util.HexFormat.of().parseHex(
      "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c");
  /** Record header (5), handshake type (1) and length (3), legacy_version (2). */
  private static final int RANDOM_AT = 11;

  private final Runnable onRetry;

  HelloRetryWatch(Runnable onRetry) {
    this.onRetry = onRetry;
  }

  @Override
  protected void decode(ChannelHandlerContext ctx, ByteBuf in, List<Object> out) {
    int at = in.readerIndex();
    if (in.getUnsignedByte(at) == 0x16 && in.readableBytes() < RANDOM_AT + HRR_RANDOM.length) {
      return; // a handshake record: its first 43 bytes tell
    }
    if (in.getUnsignedByte(at) == 0x16 && in.getUnsignedByte(at + 5) == 2
        && isRetryRandom(in, at + RANDOM_AT)) {
      onRetry.run();
    }
    ctx.pipeline().remove(this); // what it holds goes on to the relay, unchanged
  }

  private static boolean isRetryRandom(ByteBuf in, int from) {
    for (int i = 0; i < HRR_RANDOM.length; i++) {
      if (in.getByte(from + i) != HRR_RANDOM[i]) {
        return false;
      }
    }
    return true;
  }

  /** The server's FIN within those 43 bytes: what came goes on, then the FIN. */
  @Override
  protected void decodeLast(ChannelHandlerContext ctx, ByteBuf in, List<Object> out) {
    if (in.isReadable()) {
      out.add(in.readRetainedSlice(in.readableBytes()));
    }
  }
}
