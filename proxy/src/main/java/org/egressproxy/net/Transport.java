package org.egressproxy.net;

import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.IoHandlerFactory;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.epoll.Epoll;
import io.netty.channel.epoll.EpollChannelOption;
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

/** Netty's native epoll transport where it loads, NIO otherwise; io_uring on request. */
public record Transport(
    String name,
    IoHandlerFactory ioHandlerFactory,
    Class<? extends ServerSocketChannel> serverChannel,
    Class<? extends SocketChannel> socketChannel,
    Class<? extends DatagramChannel> datagramChannel,
    String fallbackReason) {
  // fallbackReason: a line for the operator when this is not the transport asked for or the
  // best one (said once at start), else null

  /**
   * Epoll when available, else NIO; {@code -Degress.transport} (or {@code EGRESS_TRANSPORT})
   * {@code nio} forces NIO, {@code io_uring} picks io_uring where the kernel allows it.
   */
  public static Transport select() {
    String chosen = System.getProperty("egress.transport", System.getenv("EGRESS_TRANSPORT"));
    String notice = null;
    if (chosen != null && !chosen.isEmpty() && !java.util.Set.of("epoll", "io_uring", "nio")
        .contains(chosen)) {
      notice = "egress.transport=" + chosen + " is not one of epoll, io_uring, nio";
    }
    if ("io_uring".equals(chosen)) {
      if (io.netty.channel.uring.IoUring.isAvailable()) {
        return new Transport("io_uring", io.netty.channel.uring.IoUringIoHandler.newFactory(),
            io.netty.channel.uring.IoUringServerSocketChannel.class,
            io.netty.channel.uring.IoUringSocketChannel.class,
            io.netty.channel.uring.IoUringDatagramChannel.class, null);
      }
      notice = "io_uring unavailable (" + io.netty.channel.uring.IoUring.unavailabilityCause()
          + ")";
    }
    if ("nio".equals(chosen)) {
      return nio("NIO chosen with egress.transport=nio");
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

  /** The IP_TRANSPARENT channel option of this transport (a native one), or null (NIO). */
  public ChannelOption<Boolean> ipTransparent() {
    return switch (name) {
      case "epoll" -> EpollChannelOption.IP_TRANSPARENT;
      case "io_uring" -> io.netty.channel.uring.IoUringChannelOption.IP_TRANSPARENT;
      default -> null;
    };
  }

  /** Whether listeners can be transparent (IP_TRANSPARENT is a native channel option). */
  public boolean transparentCapable() {
    return ipTransparent() != null;
  }

  public EventLoopGroup newGroup(int threads, String threadName) {
    return new MultiThreadIoEventLoopGroup(threads, new DefaultThreadFactory(threadName, true),
        ioHandlerFactory);
  }
}
