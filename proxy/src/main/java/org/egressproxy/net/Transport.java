package org.egressproxy.net;

import io.netty.channel.ChannelFactory;
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
import io.netty.channel.socket.SocketProtocolFamily;
import io.netty.channel.socket.nio.NioDatagramChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.channel.socket.nio.NioSocketChannel;
import io.netty.util.concurrent.DefaultThreadFactory;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.nio.channels.spi.SelectorProvider;

/**
 * Netty's native epoll transport where it loads, NIO otherwise. {@code fallbackReason}: a line
 * for the operator (said once at start) when this is not the transport asked for or the best
 * one, else null.
 */
public record Transport(
    String name,
    IoHandlerFactory ioHandlerFactory,
    Class<? extends ServerSocketChannel> serverChannel,
    Class<? extends SocketChannel> socketChannel,
    Class<? extends DatagramChannel> datagramChannel,
    String fallbackReason) {

  /**
   * Epoll when available, else NIO; {@code -Degress.transport=nio} (or {@code
   * EGRESS_TRANSPORT=nio}) forces NIO.
   */
  public static Transport select() {
    String chosen = System.getProperty("egress.transport", System.getenv("EGRESS_TRANSPORT"));
    String notice = null;
    if ("nio".equals(chosen)) {
      return nio("NIO chosen with egress.transport=nio");
    }
    if (chosen != null && !chosen.isEmpty() && !chosen.equals("epoll")) {
      notice = "egress.transport=" + chosen + " is not one of epoll, nio";
    }
    if (Epoll.isAvailable()) {
      return new Transport("epoll", EpollIoHandler.newFactory(), EpollServerSocketChannel.class,
          EpollSocketChannel.class, EpollDatagramChannel.class,
          notice == null ? null : notice + "; using epoll");
    }
    return nio((notice == null ? "" : notice + "; ") + "native epoll unavailable ("
        + Epoll.unavailabilityCause() + "), using NIO");
  }

  /** The NIO transport; {@code why} says why it is used instead of a native one. */
  public static Transport nio(String why) {
    return new Transport("nio", NioIoHandler.newFactory(), NioServerSocketChannel.class,
        NioSocketChannel.class, NioDatagramChannel.class, why);
  }

  /** Whether listeners can be transparent (IP_TRANSPARENT is an epoll channel option). */
  public boolean transparentCapable() {
    return EpollServerSocketChannel.class.equals(serverChannel);
  }

  /**
   * Socket channels of the address family of {@code target}: an IPv4 socket for an IPv4
   * address rather than a dual-stack IPv6 one (which costs a setsockopt per connection and
   * IPv4-mapped addressing in the kernel).
   */
  public ChannelFactory<SocketChannel> socketChannelFor(InetAddress target) {
    SocketProtocolFamily family = familyOf(target);
    if (EpollSocketChannel.class.equals(socketChannel)) {
      return () -> new EpollSocketChannel(family);
    }
    return () -> new NioSocketChannel(SelectorProvider.provider(), family);
  }

  /** Listening channels of the address family of {@code bind}, as {@link #socketChannelFor}. */
  public ChannelFactory<ServerSocketChannel> serverChannelFor(InetAddress bind) {
    SocketProtocolFamily family = familyOf(bind);
    if (EpollServerSocketChannel.class.equals(serverChannel)) {
      return () -> new EpollServerSocketChannel(family);
    }
    return () -> new NioServerSocketChannel(SelectorProvider.provider(), family);
  }

  private static SocketProtocolFamily familyOf(InetAddress a) {
    return a instanceof Inet4Address ? SocketProtocolFamily.INET : SocketProtocolFamily.INET6;
  }

  public EventLoopGroup newGroup(int threads, String threadName) {
    return new MultiThreadIoEventLoopGroup(threads, new DefaultThreadFactory(threadName, true),
        ioHandlerFactory);
  }
}
