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
import io.netty.channel.epoll.EgressSplice;
import io.netty.util.ReferenceCountUtil;
import java.util.Map;
import org.egressproxy.log.Connection;
import org.egressproxy.net.PipelineNames;

/**
 * One direction of a relay: bytes read on this channel are written, as the same buffers, to the
 * peer. Backpressure: when the peer cannot take more (its write buffer is over the high water
 * mark) this side stops reading, and reads again once the peer drains below the low mark. A FIN
 * from this side becomes a FIN to the peer (half-close), so a response still flows back; the
 * connection closes when both sides are done or either fails.
 *
 * <p>With {@code tunnel.splice}, a direction that has relayed {@link #SPLICE_AFTER} bytes is a
 * bulk transfer: on epoll it goes on in the kernel ({@code splice(2)} through a pipe, no copy
 * into user space), in {@link #SPLICE_CHUNK}-byte splices, counted exactly as it goes (see
 * {@link Splice}). Short tunnels and trickles never get there; a side whose pipeline does more
 * than relay (an HTTPS proxy listener's TLS) never splices.
 */
public final class Relay extends ChannelInboundHandlerAdapter {
  /** Bytes a direction relays by copying before it may splice. */
  static final long SPLICE_AFTER = 4L << 20;
  /** Bytes per splice: each one is a future, a count and a chance to read normally. */
  static final int SPLICE_CHUNK = 4 << 20;
  /** A bound on the bytes read after a FIN: the socket's receive buffer holds far fewer. */
  private static final long MAX_DRAIN = 256L << 20;

  private final Channel peer;
  private final Connection connection;
  private final boolean up;
  private final Counter bytes;
  private final Runnable onClose;
  /** {@code tunnel.splice}, and the transport can. */
  private final boolean maySplice;
  /** Set once this direction relayed SPLICE_AFTER bytes and could splice. */
  private Splice splice;
  private boolean spliceConsidered;
  /** Told, before it goes on, whether the server's first record is a HelloRetryRequest. */
  interface FirstRecord {
    void seen(boolean helloRetry);
  }

  /**
   * The upstream side, once a ClientHello went through: told what the server's first record
   * is ({@link #watchForRetry}); null after.
   */
  private FirstRecord onFirstRecord;
  /**
   * The client side, from a checked ClientHello until the server's first record: what its
   * bytes must pass, and what refuses them ({@link #guard}); null otherwise.
   */
  private HelloGuard guard;
  private Runnable refuse;
  /** The server's first bytes while they are too few to tell (rare: one read has them all). */
  private ByteBuf firstBytes;

  /**
   * @param up whether this side is the client (its bytes go up)
   * @param onClose run once, on the client side's loop, when the relay ends
   * @param splice {@code tunnel.splice}: bulk transfers splice where the transport can
   */
  public Relay(Channel peer, Connection connection, boolean up, Counter bytes, Runnable onClose,
      boolean splice) {
    this.peer = peer;
    this.connection = connection;
    this.up = up;
    this.bytes = bytes;
    this.onClose = onClose;
    this.maySplice = splice && EgressSplice.AVAILABLE;
  }

  @Override
  public void handlerAdded(ChannelHandlerContext ctx) {
    if (ctx.channel().isActive()) {
      ctx.channel().config().setAutoRead(peer.isWritable());
      ctx.read();
    }
  }

  /**
   * On the upstream side, before anything came from the server: {@code onFirstRecord} is told
   * whether the server's first record is a HelloRetryRequest, before that record goes on to the
   * client (so that the client's second ClientHello meets a check); a FIN or a close from the
   * server first counts as no. Every byte is passed on unchanged.
   */
  void watchForRetry(FirstRecord onFirstRecord) {
    this.onFirstRecord = onFirstRecord;
  }

  /**
   * On the client side, right behind its ClientHello: what it sends goes through {@code
   * guard}, and on its first violation {@code refuse} runs instead of the write; {@code null}
   * ends that (the server's first record came).
   */
  void guard(HelloGuard guard, Runnable refuse) {
    this.guard = guard;
    this.refuse = refuse;
  }

  @Override
  public void channelRead(ChannelHandlerContext ctx, Object msg) {
    if (!(msg instanceof ByteBuf buf)) {
      ReferenceCountUtil.release(msg);
      return;
    }
    if (guard != null && !guard.pass(buf)) {
      buf.release();
      Runnable run = refuse;
      guard(null, null);
      run.run();
      return;
    }
    if (onFirstRecord != null) {
      buf = firstRecord(ctx, buf);
      if (buf == null) {
        return; // held until the record's first bytes are in
      }
    }
    count(buf.readableBytes());
    // Ownership of buf passes to the peer's outbound buffer here.
    peer.write(buf, peer.voidPromise());
    if (!peer.isWritable()) {
      ctx.channel().config().setAutoRead(false);
    }
    if (!spliceConsidered && maySplice && (up ? connection.bytesUp : connection.bytesDown)
        >= SPLICE_AFTER) {
      spliceConsidered = true;
      if (splicable(ctx.channel(), true) && splicable(peer, false)) {
        splice = new Splice(ctx);
        connection.spliced(up, this::settle);
        splice.next();
      }
    }
  }

  /** The server's first bytes: looked at (see {@link #watchForRetry}), or held until they tell. */
  private ByteBuf firstRecord(ChannelHandlerContext ctx, ByteBuf buf) {
    if (firstBytes != null) {
      buf = ((io.netty.buffer.CompositeByteBuf) firstBytes).addComponent(true, buf);
      firstBytes = null;
    }
    int verdict = HelloRetry.verdict(buf);
    if (verdict == HelloRetry.MORE) {
      firstBytes = buf instanceof io.netty.buffer.CompositeByteBuf
          ? buf : ctx.alloc().compositeBuffer().addComponent(true, buf);
      return null;
    }
    FirstRecord run = onFirstRecord;
    onFirstRecord = null;
    run.seen(verdict == HelloRetry.YES);
    return buf;
  }

  /** What {@link #firstRecord} holds goes on (the server's FIN or close came first). */
  private void passHeld() {
    FirstRecord run = onFirstRecord;
    onFirstRecord = null;
    if (run != null) {
      run.seen(false);
    }
    ByteBuf held = firstBytes;
    firstBytes = null;
    if (held != null) {
      count(held.readableBytes());
      peer.write(held, peer.voidPromise());
    }
  }

  @Override
  public void handlerRemoved(ChannelHandlerContext ctx) {
    if (firstBytes != null) {
      firstBytes.release();
      firstBytes = null;
    }
  }

  /**
   * Whether spliced bytes may bypass {@code ch}'s handlers: as the source, every handler lets
   * what it reads through untouched; as the target, what is written (the SNI check, still
   * waiting for the client's first bytes, only holds back reads).
   */
  private static boolean splicable(Channel ch, boolean source) {
    for (Map.Entry<String, io.netty.channel.ChannelHandler> e : ch.pipeline()) {
      String name = e.getKey();
      boolean passes = name.equals(PipelineNames.RELAY) || name.equals(PipelineNames.IDLE)
          || name.equals(PipelineNames.TRACKER)
          || (!source && name.equals(PipelineNames.SNI_CHECK))
          || (e.getValue() instanceof io.netty.handler.proxy.ProxyHandler p && p.isConnected());
      if (!passes) {
        return false;
      }
    }
    return true;
  }

  /** Adds {@code n} relayed bytes to this direction's count and counter. */
  private void count(long n) {
    if (up) {
      connection.bytesUp += n;
    } else {
      connection.bytesDown += n;
    }
    bytes.increment(n);
  }

  /** Whether this direction splices (or has spliced). */
  boolean splicing() {
    return splice != null;
  }

  /**
   * Brings the connection's byte counts (and the byte counter) up to date with what this
   * direction has spliced so far. On the event loop; cheap, and a no-op when not splicing.
   */
  void settle() {
    if (splice != null) {
      splice.settle();
    }
  }

  /**
   * A direction in splice mode: one splice of {@link #SPLICE_CHUNK} bytes at a time, the next
   * started when one completes (between them the socket is read as usual, in order: whatever
   * Netty reads normally is queued behind the spliced bytes on the peer). {@code counted} is
   * what this direction's completed splices and the current one's progress have added to the
   * connection's count and the counter already.
   */
  private final class Splice {
    private final ChannelHandlerContext ctx;
    private EgressSplice.Progress current;
    /** Bytes of {@code current} already counted. */
    private long counted;
    private boolean stopped;

    Splice(ChannelHandlerContext ctx) {
      this.ctx = ctx;
    }

    void next() {
      Channel ch = ctx.channel();
      if (stopped || !EgressSplice.possible(ch, peer)
          || (ch instanceof DuplexChannel d && d.isInputShutdown())) {
        stopped = true;
        return;
      }
      // A FIN seen during a splice must come as an event (see finished()), not as Netty's
      // close: the socket may still hold data then. (The tunnel's other FIN may have turned
      // half-closure off on this side, to close at this side's FIN.)
      ch.config().setOption(ChannelOption.ALLOW_HALF_CLOSURE, true);
      try {
        current = EgressSplice.start(ch, peer, SPLICE_CHUNK);
      } catch (RuntimeException e) {
        stopped = true; // not this pair of channels (a transport change): copying goes on
        return;
      }
      counted = 0;
      current.future().addListener(f -> {
        settle();
        if (f.isSuccess()) {
          // Next turn: Netty may still hold this splice at the head of its queue now.
          ctx.executor().execute(this::next);
        } else if (ch.isActive() && peer.isActive()) {
          closeBoth(ctx); // a socket error while splicing
        }
      });
    }

    /**
     * The source's FIN came during a splice: Netty shut its input as soon as it saw the FIN,
     * whatever the socket still held. That rest is read here and queued on the peer behind the
     * spliced bytes, before the FIN is passed on; no further splice starts.
     */
    void finished() {
      stopped = true;
      settle();
      try {
        long n = EgressSplice.drain(ctx.channel(), peer, MAX_DRAIN);
        if (n > 0) {
          count(n);
        }
      } catch (java.io.IOException e) {
        closeBoth(ctx); // the socket failed under us: nothing sure can be passed on
      }
    }

    void settle() {
      if (current != null) {
        long moved = current.moved();
        long add = moved - counted;
        if (add > 0) {
          counted = moved;
          count(add);
        }
      }
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
      passHeld();
      if (splice != null) {
        splice.finished(); // the bytes still queued in the socket go before the FIN
      }
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
            // Not while the peer splices: Netty would close it at the FIN with data unread.
            if (!(peer.pipeline().get(PipelineNames.RELAY) instanceof Relay r && r.splicing())) {
              peer.config().setOption(ChannelOption.ALLOW_HALF_CLOSURE, false);
            }
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
    passHeld();
    settle();
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
