// libnl-based link watching: interfaces (NICs, VNF veths) going down or away are noticed at
// once through RTNLGRP_LINK notifications. poll()-driven.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "common/error.h"

struct nl_sock;

namespace anychain::daemon {

struct LinkEvent {
  int ifindex = 0;
  std::string name;
  bool exists = true;   // false: the interface was deleted
  bool up = false;      // administratively up and carrier (IFF_UP and IFF_LOWER_UP)
};

class LinkWatcher {
 public:
  static Result<LinkWatcher> open();
  LinkWatcher(LinkWatcher&&) noexcept;
  LinkWatcher& operator=(LinkWatcher&&) noexcept;
  ~LinkWatcher();

  int fd() const;
  // Read every pending notification; calls on_event for each link change.
  void on_readable();
  std::function<void(const LinkEvent&)> on_event;

  // Current state of one interface (ENODEV if it does not exist).
  static Result<LinkEvent> query(const std::string& ifname);

  struct SockDeleter {
    void operator()(nl_sock* s) const;
  };

 private:
  LinkWatcher() = default;
  std::unique_ptr<nl_sock, SockDeleter> sock_;
};

}  // namespace anychain::daemon
