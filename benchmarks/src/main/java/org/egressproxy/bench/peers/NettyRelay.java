package org.egressproxy.bench.peers;

import io.netty.bootstrap.Bootstrap;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.socket.ChannelInputShutdownEvent;
import io.netty.channel.socket.SocketChannel;
import java.net.InetSocketAddress;
import org.egressproxy.net.ProxyServer;
import org.egressproxy.net.Transport;

/**
 * A bare TCP relay on egress-proxy's own runtime, for {@code benchmarks/peers/run.sh}: the same
 * Netty transport (native epoll), one event loop per core, the same read sizes, write-buffer
 * water marks and JVM flags, and nothing of egress-proxy on top: no CONNECT, no policy, no name
 * lookup, no decision log, no metrics, no limits, no idle timeouts. Every connection goes to the
 * one {@code --target}. A yardstick beside HAProxy's and nginx's plain relays, which do as
 * little: the difference between this row and HAProxy's is what the JVM and Netty cost per
 * connection; the difference between this row and egress-proxy's is what egress-proxy's own
 * work costs.
 *
 * <pre>
 * java -cp benchmarks.jar org.egressproxy.bench.peers.NettyRelay \
 *     --listen 127.0.0.1:P --target 127.0.0.1:Q
 * </pre>
 *
 * It relays as egress-proxy does: reading stops on one side while the other is not writable, a
 * FIN is passed on as a FIN, and a connection closes once both directions have ended.
 */
public final class NettyRelay {
  private NettyRelay() {}

  public static void main(String[] args) throws Exception {
    String[] withMode = new String[args.length + 1]; // PeerLoad's options follow a mode word
    System.arraycopy(args, 0, withMode, 1, args.length);
    var o = PeerLoad.options(withMode);
    if (!o.containsKey("listen") || !o.containsKey("target")) {
      System.err.println("usage: NettyRelay --listen HOST:PORT --target HOST:PORT");
      System.exit(2);
    }
    InetSocketAddress listen = PeerLoad.hostPort(o.get("listen"));
    InetSocketAddress target = PeerLoad.hostPort(o.get("target"));
    boolean splice = Boolean.parseBoolean(o.getOrDefault("splice", "false"));
    Transport transport = Transport.select();
    EventLoopGroup loops = transport.newGroup(Runtime.getRuntime().availableProcessors(), "relay");
    Channel server = new ServerBootstrap()
        .group(loops)
        .channelFactory(transport.serverChannelFor(listen.getAddress()))
        .childOption(ChannelOption.AUTO_READ, false) // until the upstream is connected
        .childOption(ChannelOption.ALLOW_HALF_CLOSURE, true)
        .childOption(ChannelOption.RCVBUF_ALLOCATOR, ProxyServer.READS)
        .childOption(ChannelOption.WRITE_BUFFER_WATER_MARK, ProxyServer.WATER_MARK)
        .childHandler(new ChannelInboundHandlerAdapter() {
          @Override
          public void channelActive(ChannelHandlerContext ctx) {
            connect(ctx.channel(), target, transport, splice);
          }

          @Override
          public boolean isSharable() {
            return true;
          }
        })
        .bind(listen).sync().channel();
    System.out.println("relaying " + listen + " -> " + target + " (" + transport.name() + ")");
    server.closeFuture().sync();
  }

  private static void connect(Channel client, InetSocketAddress target, Transport transport,
      boolean splice) {
    new Bootstrap()
        .group(client.eventLoop())
        .channelFactory(transport.socketChannelFor(target.getAddress()))
        .option(ChannelOption.ALLOW_HALF_CLOSURE, true)
        .option(ChannelOption.RCVBUF_ALLOCATOR, ProxyServer.READS)
        .option(ChannelOption.WRITE_BUFFER_WATER_MARK, ProxyServer.WATER_MARK)
        .handler(new Pipe(client))
        .connect(target)
        .addListener((ChannelFutureListener) f -> {
          if (!f.isSuccess()) {
            client.close();
            return;
          }
          client.pipeline().replace(client.pipeline().first(), "pipe", new Pipe(f.channel()));
          if (splice) {
            splice(client, f.channel());
            splice(f.channel(), client);
          }
          client.config().setAutoRead(true);
        });
  }

  /**
   * --splice true: Netty's splice(2) from each socket to the other through a pipe, no copy
   * through Java (epoll only). For W1 only: a FIN is passed on without waiting for what is still
   * in the pipe, so a short connection can lose its tail.
   */
  @SuppressWarnings("deprecation")
  private static void splice(Channel from, Channel to) {
    ((io.netty.channel.epoll.AbstractEpollStreamChannel) from).spliceTo(
        (io.netty.channel.epoll.AbstractEpollStreamChannel) to, Integer.MAX_VALUE);
  }

  /** One direction: what this channel reads is written to the peer. */
  private static final class Pipe extends ChannelInboundHandlerAdapter {
    private final Channel peer;

    Pipe(Channel peer) {
      this.peer = peer;
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
      peer.write(msg, peer.voidPromise());
    }

    @Override
    public void channelReadComplete(ChannelHandlerContext ctx) {
      peer.flush();
    }

    @Override
    public void channelWritabilityChanged(ChannelHandlerContext ctx) {
      peer.config().setAutoRead(ctx.channel().isWritable()); // the peer's bytes wait in the kernel
    }

    @Override
    public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
      if (evt instanceof ChannelInputShutdownEvent) {
        if (((SocketChannel) ctx.channel()).isOutputShutdown()) {
          ctx.close(); // both directions ended
        } else {
          ((SocketChannel) peer).shutdownOutput();
        }
      }
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
      peer.writeAndFlush(Unpooled.EMPTY_BUFFER).addListener(ChannelFutureListener.CLOSE);
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
      ctx.close();
    }
  }
}
