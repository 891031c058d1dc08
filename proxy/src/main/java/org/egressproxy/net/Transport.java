package org.egressproxy.net;

import io.netty.channel.EventLoopGroup;
import io.netty.channel.IoHandlerFactory;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.epoll.Epoll;
import io.netty.channel.epoll.EpollDatagramChannel;
import io.netty.channel.epoll.EpollIoHandler;
import io.netty.channel.epoll.EpollServerSocketChannel;
import io.netty.channel.epoll.EpollSocketChannel;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.DatagramChannel;
import io.netty.channel.socket.ServerSocketChannel;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioDatagramChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.channel.socket.nio.NioSocketChannel;
import io.netty.util.concurrent.DefaultThreadFactory;

/** Netty's native epoll transport where it loads, NIO otherwise. */
public record Transport(
    String name,
    IoHandlerFactory ioHandlerFactory,
    Class<? extends ServerSocketChannel> serverChannel,
    Class<? extends SocketChannel> socketChannel,
    Class<? extends DatagramChannel> datagramChannel,
    String fallbackReason) {

  /** Epoll when available (and not disabled with {@code -Degress.transport=nio}), else NIO. */
  public static Transport select() {
    boolean nioForced = "nio".equals(System.getProperty("egress.transport",
        System.getenv("EGRESS_TRANSPORT")));
    if (!nioForced && Epoll.isAvailable()) {
      return new Transport("epoll", EpollIoHandler.newFactory(), EpollServerSocketChannel.class,
          EpollSocketChannel.class, EpollDatagramChannel.class, null);
    }
    return nio(nioForced ? "-Degress.transport=nio" : String.valueOf(Epoll.unavailabilityCause()));
  }

  /** The NIO transport; {@code why} says why it is used instead of epoll. */
  public static Transport nio(String why) {
    return new Transport("nio", NioIoHandler.newFactory(), NioServerSocketChannel.class,
        NioSocketChannel.class, NioDatagramChannel.class, why);
  }

  /** Whether listeners can be transparent (IP_TRANSPARENT is an epoll channel option). */
  public boolean transparentCapable() {
    return EpollServerSocketChannel.class.equals(serverChannel);
  }

  public EventLoopGroup newGroup(int threads, String threadName) {
    return new MultiThreadIoEventLoopGroup(threads, new DefaultThreadFactory(threadName, true),
        ioHandlerFactory);
  }
}
