package org.egressproxy.it;

import io.netty.bootstrap.Bootstrap;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.DatagramChannel;
import io.netty.channel.socket.nio.NioDatagramChannel;
import io.netty.handler.codec.dns.DatagramDnsQuery;
import io.netty.handler.codec.dns.DatagramDnsQueryDecoder;
import io.netty.handler.codec.dns.DatagramDnsResponse;
import io.netty.handler.codec.dns.DatagramDnsResponseEncoder;
import io.netty.handler.codec.dns.DefaultDnsRawRecord;
import io.netty.handler.codec.dns.DnsQuestion;
import io.netty.handler.codec.dns.DnsRecordType;
import io.netty.handler.codec.dns.DnsResponseCode;
import io.netty.handler.codec.dns.DnsSection;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A DNS server on 127.0.0.1 (UDP) for the proxy's {@code resolver.servers}: answers A and AAAA
 * queries from a fixed table (what a rebinding attacker's name server would say), NXDOMAIN for
 * the rest, at once or after a delay; or, when {@code silent}, reads every query and never
 * answers.
 */
public final class TestDns implements AutoCloseable {
  private final EventLoopGroup group = new MultiThreadIoEventLoopGroup(1, NioIoHandler.newFactory());
  private final Channel channel;
  /** Queries received. */
  public final AtomicInteger queries = new AtomicInteger();

  /** @param answers name (no trailing dot) to its addresses */
  public TestDns(Map<String, List<String>> answers, boolean silent) {
    this(answers, silent, 0);
  }

  /** The same, each answer sent {@code delayMs} after its query (a slow name server). */
  public TestDns(Map<String, List<String>> answers, boolean silent, long delayMs) {
    channel = new Bootstrap().group(group).channel(NioDatagramChannel.class)
        .handler(new ChannelInitializer<DatagramChannel>() {
          @Override
          protected void initChannel(DatagramChannel ch) {
            ch.pipeline().addLast(new DatagramDnsQueryDecoder(), new DatagramDnsResponseEncoder(),
                new SimpleChannelInboundHandler<DatagramDnsQuery>() {
                  @Override
                  protected void channelRead0(ChannelHandlerContext ctx, DatagramDnsQuery q) {
                    queries.incrementAndGet();
                    if (silent) {
                      return;
                    }
                    DatagramDnsResponse r = answer(q, answers);
                    if (delayMs > 0) {
                      ctx.executor().schedule(() -> ctx.writeAndFlush(r), delayMs,
                          TimeUnit.MILLISECONDS);
                    } else {
                      ctx.writeAndFlush(r);
                    }
                  }
                });
          }
        })
        .bind(new InetSocketAddress("127.0.0.1", 0)).syncUninterruptibly().channel();
  }

  private static DatagramDnsResponse answer(DatagramDnsQuery q, Map<String, List<String>> table) {
    DnsQuestion question = q.recordAt(DnsSection.QUESTION);
    DatagramDnsResponse r = new DatagramDnsResponse(q.recipient(), q.sender(), q.id());
    r.setRecursionAvailable(true);
    r.addRecord(DnsSection.QUESTION, question);
    String name = question.name().toLowerCase(Locale.ROOT);
    List<String> addresses = table.get(name.endsWith(".") ? name.substring(0, name.length() - 1)
        : name);
    if (addresses == null) {
      r.setCode(DnsResponseCode.NXDOMAIN);
      return r;
    }
    for (String a : addresses) {
      byte[] bytes;
      try {
        bytes = InetAddress.getByName(a).getAddress(); // literals only: no lookup
      } catch (java.net.UnknownHostException e) {
        throw new IllegalArgumentException(e);
      }
      DnsRecordType type = bytes.length == 4 ? DnsRecordType.A : DnsRecordType.AAAA;
      if (type.equals(question.type())) {
        r.addRecord(DnsSection.ANSWER, new DefaultDnsRawRecord(question.name(), type, 60,
            Unpooled.wrappedBuffer(bytes)));
      }
    }
    return r;
  }

  /** {@code 127.0.0.1:PORT}, for {@code resolver.servers}. */
  public String address() {
    return "127.0.0.1:" + ((InetSocketAddress) channel.localAddress()).getPort();
  }

  @Override
  public void close() {
    channel.close().syncUninterruptibly();
    group.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
  }
}
