package org.egressproxy.it;

import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.ChannelInputShutdownEvent;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpServerCodec;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslHandler;
import io.netty.handler.ssl.SslHandshakeCompletionEvent;
import io.netty.util.ReferenceCountUtil;
import java.io.ByteArrayOutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;

/** Origins on 127.0.0.1 for the data-plane tests: TLS with ALPN, HTTP, raw recorders. */
public final class Origins implements AutoCloseable {
  private final EventLoopGroup group = new MultiThreadIoEventLoopGroup(2, NioIoHandler.newFactory());

  /** A running origin. */
  public static final class Origin {
    public final int port;
    public final AtomicInteger connections = new AtomicInteger();
    public final ByteArrayOutputStream received = new ByteArrayOutputStream();
    public final AtomicLong sent = new AtomicLong();
    final Channel channel;

    Origin(Channel channel) {
      this.channel = channel;
      this.port = ((InetSocketAddress) channel.localAddress()).getPort();
    }

    public synchronized byte[] receivedBytes() {
      return received.toByteArray();
    }
  }

  private Origin start(Supplier<ChannelInboundHandlerAdapter> last, SslContext tls,
      boolean http, Origin[] holder) {
    Channel ch = new ServerBootstrap().group(group).channel(NioServerSocketChannel.class)
        .childOption(ChannelOption.ALLOW_HALF_CLOSURE, true)
        .childHandler(new ChannelInitializer<>() {
          @Override
          protected void initChannel(Channel c) {
            holder[0].connections.incrementAndGet();
            if (tls != null) {
              c.pipeline().addLast(tls.newHandler(c.alloc()));
            }
            if (http) {
              c.pipeline().addLast(new HttpServerCodec(), new HttpObjectAggregator(1 << 20));
            }
            c.pipeline().addLast(last.get());
          }
        })
        .bind(new InetSocketAddress("127.0.0.1", 0)).syncUninterruptibly().channel();
    return new Origin(ch);
  }

  /**
   * TLS origin offering the given ALPN protocols. With {@code http/1.1} (or none) negotiated it
   * answers HTTP requests with "alpn=... host=..."; otherwise it writes "alpn=P\n" and echoes.
   */
  public Origin tls(SslContext ctx) {
    Origin[] o = new Origin[1];
    o[0] = start(() -> new ChannelInboundHandlerAdapter() {
      @Override
      public void userEventTriggered(ChannelHandlerContext c, Object evt) {
        if (evt instanceof SslHandshakeCompletionEvent e && e.isSuccess()) {
          String p = c.pipeline().get(SslHandler.class).applicationProtocol();
          if (p == null || p.equals("http/1.1")) {
            c.pipeline().addBefore(c.name(), "codec", new HttpServerCodec());
            c.pipeline().addBefore(c.name(), "agg", new HttpObjectAggregator(1 << 20));
            c.pipeline().replace(this, "http", httpResponder("alpn=" + p + " "));
          } else {
            c.writeAndFlush(Unpooled.copiedBuffer("alpn=" + p + "\n", StandardCharsets.UTF_8));
          }
        }
        c.fireUserEventTriggered(evt);
      }

      @Override
      public void channelRead(ChannelHandlerContext c, Object msg) {
        c.writeAndFlush(msg); // echo
      }
    }, ctx, false, o);
    return o[0];
  }

  /** Plain HTTP origin answering "host=H path=P method=M" with keep-alive. */
  public Origin http() {
    Origin[] o = new Origin[1];
    o[0] = start(() -> httpResponder(""), null, true, o);
    return o[0];
  }

  static ChannelInboundHandlerAdapter httpResponder(String prefix) {
    return new ChannelInboundHandlerAdapter() {
      @Override
      public void channelRead(ChannelHandlerContext c, Object msg) {
        FullHttpRequest req = (FullHttpRequest) msg;
        String body = prefix + "host=" + req.headers().get(HttpHeaderNames.HOST) + " path="
            + req.uri() + " method=" + req.method() + " proxy-auth="
            + req.headers().contains("Proxy-Authorization") + " bytes="
            + req.content().readableBytes() + "\n";
        boolean keepAlive = HttpUtil.isKeepAlive(req);
        req.release();
        FullHttpResponse r = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1,
            HttpResponseStatus.OK, Unpooled.copiedBuffer(body, StandardCharsets.UTF_8));
        r.headers().setInt(HttpHeaderNames.CONTENT_LENGTH, r.content().readableBytes());
        if (!keepAlive) {
          c.writeAndFlush(r).addListener(ChannelFutureListener.CLOSE);
        } else {
          c.writeAndFlush(r);
        }
      }
    };
  }

  /**
   * Raw TCP origin recording what it receives; at the client's FIN it answers "got N" and closes
   * (half-close test).
   */
  public Origin recorder() {
    Origin[] o = new Origin[1];
    o[0] = start(() -> new ChannelInboundHandlerAdapter() {
      long count;

      @Override
      public void channelRead(ChannelHandlerContext c, Object msg) {
        ByteBuf b = (ByteBuf) msg;
        count += b.readableBytes();
        synchronized (o[0]) {
          byte[] bytes = new byte[b.readableBytes()];
          b.readBytes(bytes);
          o[0].received.writeBytes(bytes);
        }
        b.release();
      }

      @Override
      public void userEventTriggered(ChannelHandlerContext c, Object evt) {
        if (evt instanceof ChannelInputShutdownEvent) {
          c.writeAndFlush(Unpooled.copiedBuffer("got " + count + "\n", StandardCharsets.UTF_8))
              .addListener(ChannelFutureListener.CLOSE);
          return;
        }
        c.fireUserEventTriggered(evt);
      }
    }, null, false, o);
    return o[0];
  }

  /** Raw TCP origin that sends back what it receives. */
  public Origin echo() {
    Origin[] o = new Origin[1];
    o[0] = start(EchoHandler::new, null, false, o);
    return o[0];
  }

  /** Echoes, with backpressure: stops reading while the echo cannot be written. */
  static final class EchoHandler extends ChannelInboundHandlerAdapter {
    @Override
    public void channelRead(ChannelHandlerContext c, Object msg) {
      c.write(msg);
      if (!c.channel().isWritable()) {
        c.channel().config().setAutoRead(false);
      }
    }

    @Override
    public void channelReadComplete(ChannelHandlerContext c) {
      c.flush();
    }

    @Override
    public void channelWritabilityChanged(ChannelHandlerContext c) {
      c.channel().config().setAutoRead(c.channel().isWritable());
    }

    @Override
    public void userEventTriggered(ChannelHandlerContext c, Object evt) {
      if (evt instanceof ChannelInputShutdownEvent) {
        c.writeAndFlush(Unpooled.EMPTY_BUFFER).addListener(ChannelFutureListener.CLOSE);
        return;
      }
      c.fireUserEventTriggered(evt);
    }
  }

  /**
   * An echo origin in a process of its own (file descriptors of its own, for the load test):
   * prints {@code port N}, serves until its standard input closes.
   */
  public static void main(String[] args) throws Exception {
    try (Origins o = new Origins()) {
      System.out.println("port " + o.echo().port);
      System.out.flush();
      while (System.in.read() >= 0) {
        // until the parent closes our standard input (or dies)
      }
    }
  }

  /** Writes 64 KiB chunks for as long as its peer takes them (respecting its own writability). */
  public Origin streamer(long limit) {
    Origin[] o = new Origin[1];
    o[0] = start(() -> new ChannelInboundHandlerAdapter() {
      @Override
      public void channelActive(ChannelHandlerContext c) {
        pump(c);
      }

      @Override
      public void channelWritabilityChanged(ChannelHandlerContext c) {
        pump(c);
      }

      private void pump(ChannelHandlerContext c) {
        while (c.channel().isWritable() && o[0].sent.get() < limit) {
          ByteBuf chunk = c.alloc().buffer(65536).writeZero(65536);
          o[0].sent.addAndGet(65536);
          c.write(chunk);
        }
        c.flush();
      }

      @Override
      public void channelRead(ChannelHandlerContext c, Object msg) {
        ReferenceCountUtil.release(msg);
      }
    }, null, false, o);
    return o[0];
  }

  @Override
  public void close() {
    group.shutdownGracefully(0, 1, java.util.concurrent.TimeUnit.SECONDS).syncUninterruptibly();
  }
}
