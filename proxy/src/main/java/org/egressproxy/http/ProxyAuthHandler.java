package org.egressproxy.http;

import io.netty.channel.ChannelDuplexHandler;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.util.ReferenceCountUtil;
import java.util.ArrayDeque;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.egressproxy.auth.Credentials;
import org.egressproxy.net.PipelineNames;
import org.egressproxy.net.ProxyRuntime;

/**
 * Verifies a request's {@code Proxy-Authorization} password before the request goes on, off the
 * event loop: bcrypt and Argon2 take tens of milliseconds, which would stall every connection of
 * the loop. While a verification runs, reads are suppressed (the outbound {@code read()} is held
 * back, as Netty's {@code SslClientHelloHandler} does) and what the decoder already produced is
 * held in order, and the HTTP decoder stops after that request (what follows stays bytes: a
 * CONNECT's tunnel data is not taken for HTTP); afterwards it goes on, the decoder decodes on,
 * and the handlers behind find the result in {@link Credentials}' cache. Tokens and headers
 * already verified go straight through.
 */
public final class ProxyAuthHandler extends ChannelDuplexHandler {
  /** Verifications waiting beyond this are refused with a 503: the proxy stays responsive. */
  static final int MAX_QUEUED = 1024;

  private static final ThreadPoolExecutor VERIFIER = verifier();

  private final ProxyRuntime runtime;
  private final ArrayDeque<Object> held = new ArrayDeque<>();
  private boolean verifying;
  private boolean readPending;

  public ProxyAuthHandler(ProxyRuntime runtime) {
    this.runtime = runtime;
  }

  private static ThreadPoolExecutor verifier() {
    AtomicInteger n = new AtomicInteger();
    int threads = Math.max(1, Math.min(2, Runtime.getRuntime().availableProcessors()));
    ThreadPoolExecutor e = new ThreadPoolExecutor(threads, threads, 60, TimeUnit.SECONDS,
        new ArrayBlockingQueue<>(MAX_QUEUED), r -> {
          Thread t = new Thread(r, "egress-auth-" + n.incrementAndGet());
          t.setDaemon(true);
          return t;
        });
    e.allowCoreThreadTimeOut(true);
    return e;
  }

  /** A user event (the client's FIN, say) that came while a verification ran: kept in order. */
  private record HeldEvent(Object evt) {}

  @Override
  public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
    if (verifying) {
      held.add(new HeldEvent(evt)); // after the requests before it, not ahead of them
      return;
    }
    ctx.fireUserEventTriggered(evt);
  }

  @Override
  public void channelRead(ChannelHandlerContext ctx, Object msg) {
    if (verifying) {
      held.add(msg); // ownership: passed on in resume, or released when the channel goes
      return;
    }
    if (msg instanceof HttpRequest req) {
      Credentials credentials = runtime.decider().sources().credentials();
      String header = req.headers().get(HttpHeaderNames.PROXY_AUTHORIZATION);
      if (header != null && credentials.lookup(header) == null) {
        held.add(msg);
        verify(ctx, credentials, header);
        return;
      }
    }
    ctx.fireChannelRead(msg);
  }

  private void verify(ChannelHandlerContext ctx, Credentials credentials, String header) {
    verifying = true;
    try {
      VERIFIER.execute(() -> {
        try {
          credentials.verify(header);
        } finally {
          ctx.executor().execute(() -> resume(ctx));
        }
      });
      if (ctx.pipeline().get(PipelineNames.HTTP) instanceof ProxyHttpCodec codec) {
        // What follows this request stays bytes until it is decided: a CONNECT's tunnel data
        // must not be decoded as HTTP meanwhile.
        codec.holdRequests();
      }
    } catch (RejectedExecutionException e) {
      verifying = false;
      releaseHeld();
      ctx.writeAndFlush(HttpResponses.full(ctx.alloc(), 503, "Service Unavailable",
              "egress-proxy: too many credential checks waiting; try again", true))
          .addListener(ChannelFutureListener.CLOSE);
    }
  }

  private void resume(ChannelHandlerContext ctx) {
    verifying = false;
    if (ctx.isRemoved()) {
      releaseHeld();
      return;
    }
    Object m;
    while (!verifying && (m = held.poll()) != null) {
      if (m instanceof HeldEvent e) {
        ctx.fireUserEventTriggered(e.evt());
      } else {
        channelRead(ctx, m); // a later request with other credentials may start another round
      }
    }
    if (!verifying && ctx.pipeline().get(PipelineNames.HTTP) instanceof ProxyHttpCodec codec) {
      try {
        codec.releaseRequests(); // what the client sent after the request, in order
      } catch (Exception e) {
        ctx.fireExceptionCaught(e);
        return;
      }
    }
    if (!verifying && readPending) {
      readPending = false;
      ctx.read();
    }
  }

  @Override
  public void read(ChannelHandlerContext ctx) {
    if (verifying) {
      readPending = true; // re-issued in resume
      return;
    }
    ctx.read();
  }

  @Override
  public void channelInactive(ChannelHandlerContext ctx) {
    releaseHeld();
    ctx.fireChannelInactive();
  }

  @Override
  public void handlerRemoved(ChannelHandlerContext ctx) {
    releaseHeld();
  }

  private void releaseHeld() {
    Object m;
    while ((m = held.poll()) != null) {
      ReferenceCountUtil.release(m);
    }
  }
}
