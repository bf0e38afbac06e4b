// Control protocol over a real Unix socket: Server (poll loop in a thread) + Client, a test
// Handler backed by ConfigStore; peer credentials, oversize requests, slow clients.
// ConfigStore: add/del with whole-config validation and persistence.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "control/client.h"
#include "control/config_store.h"
#include "control/server.h"
#include "test_support.h"

namespace ctl = anychain::control;
namespace cfg = anychain::config;
using anychain::Result;
using ctl::json;
using ::testing::HasSubstr;
using anychain::test::Loop;
using anychain::test::TestHandler;

namespace {

const std::string kExample = ANYCHAIN_EXAMPLE_CONFIG;

std::filesystem::path make_dir(const char* tag) {
  auto d = std::filesystem::temp_directory_path() / (std::string("anychain-") + tag + "-" + std::to_string(getpid()));
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  chmod(d.c_str(), 0755);
  return d;
}

class ControlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = make_dir("control");
    conf_ = (dir_ / "anychaind.yaml").string();
    std::filesystem::copy_file(kExample, conf_);
    auto store = ctl::ConfigStore::load(conf_);
    ASSERT_TRUE(store.has_value()) << store.error().str();
    handler_ = std::make_unique<TestHandler>(std::move(*store));
    sock_ = (dir_ / "run/anychaind.sock").string();
    loop_ = std::make_unique<Loop>(*handler_, ctl::Server::Options{.path = sock_, .max_request = 4096});
    ASSERT_EQ(loop_->error, "");
  }
  void TearDown() override {
    loop_.reset();
    std::filesystem::remove_all(dir_);
  }
  ctl::Client client() {
    auto c = ctl::Client::connect(sock_, std::chrono::seconds(5));
    EXPECT_TRUE(c.has_value()) << c.error().str();
    return std::move(*c);
  }
  // raw connected socket
  anychain::UniqueFd raw() {
    anychain::UniqueFd fd(socket(AF_UNIX, SOCK_STREAM, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    sock_.copy(a.sun_path, sock_.size());
    EXPECT_EQ(connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    timeval tv{5, 0};
    setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
  }
  static std::string read_all(int fd) {
    std::string out;
    char b[4096];
    for (ssize_t n; (n = read(fd, b, sizeof b)) > 0;) out.append(b, n);
    return out;
  }

  std::filesystem::path dir_;
  std::string conf_, sock_;
  std::unique_ptr<TestHandler> handler_;
  std::unique_ptr<Loop> loop_;
};

TEST_F(ControlTest, SocketIsOwnerOnly) {
  struct stat st{};
  ASSERT_EQ(stat(sock_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat((dir_ / "run").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
}

TEST_F(ControlTest, StatusAndErrors) {
  auto c = client();
  auto r = c.call("status");
  ASSERT_TRUE(r.has_value()) << r.error().str();
  EXPECT_EQ((*r)["node"]["nsh_endpoint"], "10.255.0.1");

  auto unknown = c.request(json{{"cmd", "frobnicate"}});
  ASSERT_TRUE(unknown.has_value());
  EXPECT_EQ(*unknown, (json{{"ok", false}, {"error", "unknown command 'frobnicate'"}, {"code", ENOSYS}}));

  auto bad = c.call("attach", {{"ifname", "eth0"}, {"mode", "turbo"}});
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, EINVAL);
  auto wrong_type = c.call("attach", {{"ifname", "eth0"}, {"mode", 3}});
  ASSERT_FALSE(wrong_type.has_value());
  EXPECT_EQ(wrong_type.error().code, EINVAL);
  EXPECT_THAT(wrong_type.error().message, HasSubstr("bad arguments for attach"));
  auto missing = c.call("attach", {{"ifname", "nosuch0"}, {"mode", "generic"}});
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ENODEV);
  EXPECT_THAT(missing.error().message, HasSubstr("'nosuch0' does not exist"));
  auto ok = c.call("attach", {{"ifname", "eth7"}});  // mode defaults to auto
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ((*ok)["mode"], "auto");
  EXPECT_FALSE(c.call("detach", json::object()).has_value());  // ifname required
  EXPECT_EQ(handler_->calls(), (std::vector<std::string>{"status", "attach nosuch0 generic", "attach eth7 auto"}));

  // malformed lines over a raw socket: each gets an EPROTO answer, the connection stays up
  auto fd = raw();
  std::string lines = "this is not json\n[1,2]\n{\"cmd\": 7}\n{\"cmd\":\"status\",\"args\":[]}\n{\"cmd\":\"topology\"}\n";
  ASSERT_EQ(write(fd.get(), lines.data(), lines.size()), static_cast<ssize_t>(lines.size()));
  shutdown(fd.get(), SHUT_WR);
  std::istringstream in(read_all(fd.get()));
  std::vector<json> resp;
  for (std::string l; std::getline(in, l);) resp.push_back(json::parse(l));
  ASSERT_EQ(resp.size(), 5u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(resp[i]["code"], EPROTO) << resp[i];
  EXPECT_EQ(resp[4], (json{{"ok", true}, {"result", {{"routers", {"10.0.0.1"}}}}}));
}

TEST_F(ControlTest, ConfigCommandsValidateAndPersist) {
  auto c = client();
  auto bad = c.call("service_add", {{"name", "dns"}, {"id", 5000}, {"anycast", "10.9.0.1/32"}});
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, EINVAL);
  EXPECT_THAT(bad.error().message, HasSubstr("'id' = 5000 out of range 1..1023"));
  auto unk = c.call("service_add", {{"name", "dns"}, {"id", 5}, {"anycast", "10.9.0.1/32"}, {"colour", "red"}});
  ASSERT_FALSE(unk.has_value());
  EXPECT_THAT(unk.error().message, HasSubstr("unknown key 'colour'"));

  auto ok = c.call("service_add", {{"name", "dns"}, {"id", 5}, {"anycast", "10.9.0.1"}});
  ASSERT_TRUE(ok.has_value()) << ok.error().str();
  EXPECT_EQ(*ok, (json{{"name", "dns"}, {"id", 5}, {"anycast", "10.9.0.1/32"}}));
  auto dupid = c.call("service_add", {{"name", "dns2"}, {"id", 5}, {"anycast", "10.9.0.2"}});
  ASSERT_FALSE(dupid.has_value());
  EXPECT_THAT(dupid.error().message, HasSubstr("duplicate service id 5"));

  auto chain = c.call("chain_add", {{"name", "d"}, {"spi", 30}, {"services", {"dns", "fw"}}});
  ASSERT_TRUE(chain.has_value()) << chain.error().str();
  auto pol = c.call("policy_add", {{"name", "dns-first"}, {"chain", "d"}, {"proto", "udp"}, {"dport", 53}, {"index", 0}});
  ASSERT_TRUE(pol.has_value()) << pol.error().str();
  auto inst = c.call("instance_add", {{"name", "dns-a"}, {"id", 300}, {"service", "dns"}, {"veth", "vdns"},
                                      {"capacity", 5000}, {"nsh_aware", false}, {"mac", "02:00:00:00:03:00"}});
  ASSERT_TRUE(inst.has_value()) << inst.error().str();

  auto in_use = c.call("service_del", {{"name", "dns"}});
  ASSERT_FALSE(in_use.has_value());
  EXPECT_EQ(in_use.error().code, EINVAL);
  EXPECT_THAT(in_use.error().message, HasSubstr("unknown service 'dns'"));

  auto pols = c.call("policy_list");
  ASSERT_TRUE(pols.has_value());
  ASSERT_EQ(pols->size(), 4u);
  EXPECT_EQ((*pols)[0], (json{{"name", "dns-first"}, {"chain", "d"}, {"src", "any"}, {"dst", "any"},
                              {"proto", "udp"}, {"dport", "53"}, {"md_type", 1}}));

  // persisted: the file parses to the same lists
  auto file = cfg::load_file(conf_);
  ASSERT_TRUE(file.has_value());
  EXPECT_EQ(file->services.back().name, "dns");
  EXPECT_EQ(file->policies.front().name, "dns-first");
  EXPECT_EQ(file->instances.back().id, 300u);
  EXPECT_FALSE(file->instances.back().nsh_aware);

  ASSERT_TRUE(c.call("instance_del", {{"name", "dns-a"}}).has_value());
  ASSERT_TRUE(c.call("policy_del", {{"name", "dns-first"}}).has_value());
  ASSERT_TRUE(c.call("chain_del", {{"name", "d"}}).has_value());
  ASSERT_TRUE(c.call("service_del", {{"name", "dns"}}).has_value());
  auto gone = c.call("chain_del", {{"name", "d"}});
  ASSERT_FALSE(gone.has_value());
  EXPECT_EQ(gone.error().code, ENOENT);
  file = cfg::load_file(conf_);
  ASSERT_TRUE(file.has_value()) << file.error().front().str();
  EXPECT_EQ(file->services.size(), 3u);
  EXPECT_EQ(file->policies.size(), 3u);
}

TEST_F(ControlTest, OversizeRequestRejected) {
  // one complete line over the limit
  auto c = client();
  std::string big(5000, 'x');
  auto big_r = c.call("status", {{"pad", big}});
  ASSERT_FALSE(big_r.has_value());
  EXPECT_EQ(big_r.error().code, E2BIG);
  EXPECT_THAT(big_r.error().message, HasSubstr("larger than 4096 bytes"));
  // and the connection is closed after it
  auto after = c.call("status");
  ASSERT_FALSE(after.has_value());

  // bytes without a newline beyond the limit
  auto fd = raw();
  std::string junk(6000, '{');
  ASSERT_EQ(write(fd.get(), junk.data(), junk.size()), static_cast<ssize_t>(junk.size()));
  auto resp = json::parse(read_all(fd.get()));
  EXPECT_EQ(resp["code"], E2BIG);
}

TEST_F(ControlTest, SlowClientDoesNotBlockOthers) {
  auto slow = raw();
  ASSERT_EQ(write(slow.get(), "{\"cmd\": \"sta", 12), 12);  // half a request, then silence
  auto start = std::chrono::steady_clock::now();
  auto c = client();
  auto r = c.call("status");
  ASSERT_TRUE(r.has_value());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  // the slow one finishes its request later and is answered
  ASSERT_EQ(write(slow.get(), "tus\"}\n", 6), 6);
  shutdown(slow.get(), SHUT_WR);
  EXPECT_EQ(json::parse(read_all(slow.get()))["ok"], true);
}

// A non-root peer: the 0600 socket keeps it out; if the mode is opened up by mistake,
// SO_PEERCRED still refuses it. The child uses raw syscalls only (forked from a threaded process).
TEST_F(ControlTest, NonRootPeerRefused) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to drop to uid 65534";
  chmod(dir_.c_str(), 0755);
  chmod((dir_ / "run").c_str(), 0755);
  auto child = [&](bool expect_eacces) -> int {
    pid_t pid = fork();
    if (pid == 0) {
      if (setgid(65534) != 0 || setuid(65534) != 0) _exit(10);
      int fd = socket(AF_UNIX, SOCK_STREAM, 0);
      sockaddr_un a{};
      a.sun_family = AF_UNIX;
      sock_.copy(a.sun_path, sock_.size());
      if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) _exit(errno == EACCES && expect_eacces ? 0 : 11);
      if (expect_eacces) _exit(12);
      const char req[] = "{\"cmd\":\"status\"}\n";
      send(fd, req, sizeof req - 1, MSG_NOSIGNAL);  // may fail: the server may have closed already
      char buf[512] = {};
      size_t got = 0;
      for (ssize_t n; got < sizeof buf - 1 && (n = read(fd, buf + got, sizeof buf - 1 - got)) > 0;) got += n;
      bool refused = strstr(buf, "\"ok\":false") && strstr(buf, "\"code\":1,") && strstr(buf, "root only");
      bool answered = strstr(buf, "nsh_endpoint") != nullptr;
      _exit(refused && !answered ? 0 : 13);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 100;
  };
  EXPECT_EQ(child(true), 0);  // mode 0600: connect() itself fails with EACCES
  ASSERT_EQ(chmod(sock_.c_str(), 0666), 0);
  EXPECT_EQ(child(false), 0);  // connected, refused by peer credentials
  auto calls = handler_->calls();
  EXPECT_TRUE(std::find(calls.begin(), calls.end(), "status") == calls.end());
}

TEST_F(ControlTest, SecondServerRefusedStaleSocketReplaced) {
  TestHandler h2(ctl::ConfigStore(cfg::Config{}, ""));
  auto dup = ctl::Server::listen(h2, {.path = sock_});
  ASSERT_FALSE(dup.has_value());
  EXPECT_EQ(dup.error().code, EADDRINUSE);

  // a stale socket file (nobody listening) is replaced
  std::string stale = (dir_ / "stale.sock").string();
  {
    anychain::UniqueFd fd(socket(AF_UNIX, SOCK_STREAM, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    stale.copy(a.sun_path, stale.size());
    ASSERT_EQ(bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  }
  {
    auto s = ctl::Server::listen(h2, {.path = stale});
    ASSERT_TRUE(s.has_value()) << s.error().str();
  }
  EXPECT_FALSE(std::filesystem::exists(stale));  // removed on destruction

  auto none = ctl::Client::connect((dir_ / "nobody.sock").string(), std::chrono::seconds(1));
  ASSERT_FALSE(none.has_value());
  EXPECT_TRUE(ctl::daemon_absent(none.error()));
}

// ---- ConfigStore directly ----

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = make_dir("store");
    path_ = (dir_ / "c.yaml").string();
    std::filesystem::copy_file(kExample, path_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string file() {
    std::ifstream in(path_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  std::filesystem::path dir_;
  std::string path_;
};

TEST_F(StoreTest, InvalidChangesLeaveConfigAndFileAlone) {
  auto s = ctl::ConfigStore::load(path_);
  ASSERT_TRUE(s.has_value());
  std::string before = file();

  cfg::Chain ch;
  ch.name = "x";
  ch.spi = 10;
  ch.services = {"fw", "ghost"};
  auto r = s->add_chain(ch);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, EINVAL);
  EXPECT_THAT(r.error().message, HasSubstr("duplicate SPI 10"));
  EXPECT_THAT(r.error().message, HasSubstr("unknown service 'ghost'"));
  EXPECT_EQ(file(), before);
  EXPECT_EQ(s->config().chains.size(), 2u);

  cfg::Service sv;
  sv.name = "fw";
  sv.id = 9;
  sv.anycast = "10.9.9.9/32";
  auto dup = s->add_service(sv);
  ASSERT_FALSE(dup.has_value());
  EXPECT_EQ(dup.error().code, EEXIST);

  auto used = s->del_chain("web");  // policy web-in names it
  ASSERT_FALSE(used.has_value());
  EXPECT_THAT(used.error().message, HasSubstr("cannot delete chain 'web'"));
  EXPECT_THAT(used.error().message, HasSubstr("policy 'web-in': unknown chain 'web'"));
  EXPECT_EQ(file(), before);

  EXPECT_EQ(s->del_instance("nope").error().code, ENOENT);
  cfg::Policy p;
  p.name = "late";
  p.chain = "web";
  EXPECT_EQ(s->add_policy(p, 9).error().code, EINVAL);  // index beyond the list
}

TEST_F(StoreTest, AttachDetachAreRecorded) {
  auto s = ctl::ConfigStore::load(path_);
  ASSERT_TRUE(s.has_value());
  using anychain::XdpMode;
  auto a = s->record_attach("eth5", XdpMode::Generic);
  ASSERT_TRUE(a.has_value()) << a.error().str();
  EXPECT_EQ(*a, (json{{"name", "eth5"}, {"mode", "generic"}, {"classify", false}}));
  // a known interface keeps its classify flag, takes the new mode
  a = s->record_attach("eth1", XdpMode::Native);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(*a, (json{{"name", "eth1"}, {"mode", "native"}, {"classify", true}}));
  auto f = cfg::load_file(path_);
  ASSERT_TRUE(f.has_value());
  ASSERT_EQ(f->interfaces.size(), 3u);
  EXPECT_EQ(f->interfaces[1].mode, XdpMode::Native);
  EXPECT_TRUE(f->interfaces[1].classify);
  EXPECT_EQ(f->interfaces[2].name, "eth5");

  ASSERT_TRUE(s->record_detach("eth0").has_value());
  EXPECT_EQ(s->record_detach("eth0").error().code, ENOENT);
  EXPECT_EQ(s->record_attach("this-name-is-too-long", XdpMode::Auto).error().code, EINVAL);
  f = cfg::load_file(path_);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(s->list_interfaces(), (json::array({{{"name", "eth1"}, {"mode", "native"}, {"classify", true}},
                                                {{"name", "eth5"}, {"mode", "generic"}, {"classify", false}}})));
  EXPECT_EQ(f->interfaces.size(), 2u);
}

TEST_F(StoreTest, ChangesPersistAndReload) {
  auto s = ctl::ConfigStore::load(path_);
  ASSERT_TRUE(s.has_value());
  cfg::Policy p;
  p.name = "mid";
  p.chain = "out";
  p.dst = "192.0.2.0/24";
  ASSERT_TRUE(s->add_policy(p, 1).has_value());
  ASSERT_TRUE(s->del_instance("fw-a").has_value());
  auto f = cfg::load_file(path_);
  ASSERT_TRUE(f.has_value());
  ASSERT_EQ(f->policies.size(), 4u);
  EXPECT_EQ(f->policies[1].name, "mid");
  EXPECT_EQ(f->instances.size(), 1u);
  EXPECT_EQ(s->list_instances(), (json::array({{{"name", "ids-a"}, {"id", 102}, {"service", "ids"}, {"veth", "vids-a"},
                                                {"capacity", 100000}, {"nsh_aware", false},
                                                {"pid_file", "/run/ids-a.pid"},
                                                {"cgroup", "/sys/fs/cgroup/vnf/ids-a"}}})));

  // an external edit is picked up by reload(); a broken one is refused and nothing changes
  std::ofstream(path_) << "node: {nsh_endpoint: 10.0.0.9}\nservices: [{name: only, id: 1, anycast: 10.1.1.1}]\n";
  ASSERT_TRUE(s->reload().has_value());
  EXPECT_EQ(s->config().node.nsh_endpoint, "10.0.0.9");
  EXPECT_EQ(s->list_services().size(), 1u);
  std::ofstream(path_) << "node: {nsh_endpoint: nope}\n";
  auto bad = s->reload();
  ASSERT_FALSE(bad.has_value());
  EXPECT_THAT(bad.error().message, HasSubstr(path_ + ":1:22: error: node: nsh_endpoint 'nope'"));
  EXPECT_EQ(s->config().node.nsh_endpoint, "10.0.0.9");
}

}  // namespace
