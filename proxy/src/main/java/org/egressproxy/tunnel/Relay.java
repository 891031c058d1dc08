package org.egressproxy.tunnel;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelOption;
import io.netty.channel.socket.ChannelInputShutdownEvent;
import io.netty.channel.socket.DuplexChannel;
import io.micrometer.core.instrument.Counter;
import io.netty.util.ReferenceCountUtil;
import org.egressproxy.log.Connection;

/**
 * One direction of a relay: bytes read on this channel are written, as the same buffers, to the
 * peer. Backpressure: when the peer cannot take more (its write buffer is over the high water
 * mark) this side stops reading, and reads again once the peer drains below the low mark. A FIN
 * from this side becomes a FIN to the peer (half-close), so a response still flows back; the
 * connection closes when both sides are done or either fails.
 */
public final class Relay extends ChannelInboundHandlerAdapter {
  private final Channel peer;
  private final Connection connection;
  private final boolean up;
  private final Counter bytes;
  private final Runnable onClose;

  /**
   * @param up whether this side is the client (its bytes go up)
   * @param onClose run once, on the client side's loop, when the relay ends
   */
  public Relay(Channel peer, Connection connection, boolean up, Counter bytes, Runnable onClose) {
    this.peer = peer;
    this.connection = connection;
    this.up = up;
    this.bytes = bytes;
    this.onClose = onClose;
  }

  @Override
  public void handlerAdded(ChannelHandlerContext ctx) {
    if (ctx.channel().isActive()) {
      ctx.channel().config().setAutoRead(peer.isWritable());
      ctx.read();
    }
  }

  @Override
  public void channelRead(ChannelHandlerContext ctx, Object msg) {
    if (!(msg instanceof ByteBuf buf)) {
      ReferenceCountUtil.release(msg);
      return;
    }
    int n = buf.readableBytes();
    if (up) {
      connection.bytesUp += n;
    } else {
      connection.bytesDown += n;
    }
    bytes.increment(n);
    // Ownership of buf passes to the peer's outbound buffer here.
    peer.write(buf, peer.voidPromise());
    if (!peer.isWritable()) {
      ctx.channel().config().setAutoRead(false);
    }
  }

  @Override
  public void channelReadComplete(ChannelHandlerContext ctx) {
    peer.flush();
  }

  @Override
  public void channelWritabilityChanged(ChannelHandlerContext ctx) {
    // This channel drained (or filled): let the peer read again (or stop it) - unless the peer
    // has sent its FIN: there is nothing left to read, and re-arming reads on a half-closed
    // epoll socket fails (epoll_ctl ENOENT) and would take its output down with it.
    if (!(peer instanceof DuplexChannel d && d.isInputShutdown())) {
      peer.config().setAutoRead(ctx.channel().isWritable());
    }
    ctx.fireChannelWritabilityChanged();
  }

  @Override
  public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
    if (evt instanceof ChannelInputShutdownEvent) {
      HalfClosedSweep.watch(ctx.channel()); // a reset after this FIN ends the tunnel
      if (!up) {
        // The upstream's FIN; bytes may still have to go to it: keep it in epoll (Netty
        // 4.2.18 to 4.2.21). The client side gets the same from ConnectionTracker.
        io.netty.channel.epoll.EgressHalfCloseFix.inputShutdown(ctx.channel());
      }
      // FIN from this side: pass it on once what we relayed is written.
      if (peer instanceof DuplexChannel duplex && peer.isActive()) {
        boolean bothDone = ctx.channel() instanceof DuplexChannel self && self.isOutputShutdown();
        // Pass the FIN on once what was relayed is written; if the other direction is already
        // finished too, close the peer then (never before its pending bytes are out).
        peer.writeAndFlush(Unpooled.EMPTY_BUFFER).addListener(f -> {
          if (bothDone) {
            peer.close();
          } else {
            // The peer's own FIN, when it comes, finishes the tunnel: let Netty close the peer
            // at that FIN instead of half-closing it (its shutdown(2) would fail - ENOTCONN,
            // an exception with a stack trace - and be followed by the close anyway).
            peer.config().setOption(ChannelOption.ALLOW_HALF_CLOSURE, false);
            duplex.shutdownOutput();
            // The FINs may have crossed while this one waited for the peer to drain: the peer's
            // came in and went on to this side meanwhile. Then both directions are done, and
            // nothing else would end the tunnel.
            if (duplex.isInputShutdown() && ctx.channel() instanceof DuplexChannel self
                && self.isOutputShutdown()) {
              closeBoth(ctx);
            }
          }
        });
        if (bothDone) {
          ctx.close();
        }
      } else {
        closeBoth(ctx);
      }
      return;
    }
    ctx.fireUserEventTriggered(evt);
  }

  @Override
  public void channelInactive(ChannelHandlerContext ctx) {
    HalfClosedSweep.forget(ctx.channel());
    if (peer.isActive()) {
      peer.writeAndFlush(Unpooled.EMPTY_BUFFER).addListener(ChannelFutureListener.CLOSE);
    }
    finish();
  }

  @Override
  public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
    closeBoth(ctx);
  }

  private void closeBoth(ChannelHandlerContext ctx) {
    ctx.close();
    peer.close();
  }

  private void finish() {
    if (onClose != null) {
      onClose.run();
    }
  }
}
