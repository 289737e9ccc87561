#include "hsm/data_objects.h"

#include <algorithm>
#include <utility>

#include "crypto/str_cat.h"
#include "hsm/objects.h"

namespace tokensign::hsm {
namespace {

constexpr std::string_view kApplication = "tokensign";
constexpr size_t kMaxName = 128;
constexpr size_t kMaxValue = 64 * 1024;

absl::Status CheckName(std::string_view name) {
  if (name.empty() || name.size() > kMaxName) {
    return absl::InvalidArgumentError(
        Cat("data record name: must be 1..", kMaxName, " bytes"));
  }
  return absl::OkStatus();
}

// Another writer (another replica) destroyed the object between our search
// and our read: it is simply no longer a record.
bool Vanished(const absl::Status& status) {
  return RvOf(status) == CKR_OBJECT_HANDLE_INVALID;
}

// Token objects of class CKO_DATA named `name` with CKA_PRIVATE = `private_`.
absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> FindByPrivacy(
    const P11& p11, SessionPool::Lease& lease, std::string_view name,
    bool private_) {
  CK_OBJECT_CLASS cls = CKO_DATA;
  CK_BBOOL yes = CK_TRUE;
  CK_BBOOL priv = private_ ? CK_TRUE : CK_FALSE;
  absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> found =
      FindObjects(p11, lease.session(),
                  {Attr(CKA_CLASS, &cls), Attr(CKA_TOKEN, &yes),
                   Attr(CKA_PRIVATE, &priv),
                   Attr(CKA_APPLICATION, kApplication), Attr(CKA_LABEL, name)});
  if (!found.ok()) return found.status();
  std::sort(found->begin(), found->end());
  return found;
}

// The private records of `name`, each read back: a module that ignored the
// template's CKA_PRIVATE must not slip a public object through.
absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> FindRecords(
    const P11& p11, SessionPool::Lease& lease, std::string_view name) {
  absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> found =
      FindByPrivacy(p11, lease, name, /*private_=*/true);
  if (!found.ok()) return found;
  std::vector<CK_OBJECT_HANDLE> records;
  for (CK_OBJECT_HANDLE handle : *found) {
    absl::StatusOr<bool> priv =
        GetBoolAttribute(p11, lease.session(), handle, CKA_PRIVATE);
    absl::StatusOr<bool> token =
        priv.ok() ? GetBoolAttribute(p11, lease.session(), handle, CKA_TOKEN)
                  : priv;
    if (!token.ok()) {
      if (Vanished(token.status())) continue;
      return token.status();
    }
    if (*priv && *token) records.push_back(handle);
  }
  return records;
}

// The private records of `name` with their values; one destroyed by another
// writer meanwhile is left out.
absl::StatusOr<std::vector<std::pair<CK_OBJECT_HANDLE, std::string>>>
ReadRecords(const P11& p11, SessionPool::Lease& lease, std::string_view name) {
  absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> found =
      FindRecords(p11, lease, name);
  if (!found.ok()) return found.status();
  std::vector<std::pair<CK_OBJECT_HANDLE, std::string>> records;
  for (CK_OBJECT_HANDLE handle : *found) {
    absl::StatusOr<std::string> value =
        GetAttribute(p11, lease.session(), handle, CKA_VALUE);
    if (!value.ok() && Vanished(value.status())) continue;
    if (!value.ok()) return value.status();
    records.emplace_back(handle, *std::move(value));
  }
  return records;
}

}  // namespace

absl::Status DataStore::Create(std::string_view name, std::string_view value,
                               bool replace) {
  if (absl::Status s = CheckName(name); !s.ok()) return s;
  if (value.size() > kMaxValue) {
    return absl::InvalidArgumentError(Cat("data record '", name, "': value of ",
                                          value.size(), " bytes exceeds ",
                                          kMaxValue));
  }
  std::lock_guard<std::mutex> lock(*put_mu_);
  // Retried on a new session after a lost one: a record the lost reply did
  // create is one more copy, which readers tolerate (see the contract), and
  // Put's retry destroys it with the other old copies.
  return recovery_.Run(Policy("PutData", name),
                       [&](SessionPool::Lease& lease, uint64_t) {
                         return CreateOn(lease, name, value, replace);
                       });
}

absl::Status DataStore::CreateOn(SessionPool::Lease& lease,
                                 std::string_view name, std::string_view value,
                                 bool replace) {
  const P11& p11 = pool_->p11();
  std::vector<CK_OBJECT_HANDLE> old;
  if (replace) {
    absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> found =
        FindRecords(p11, lease, name);
    if (!found.ok()) return found.status();
    old = *std::move(found);
  }
  CK_OBJECT_CLASS cls = CKO_DATA;
  CK_BBOOL yes = CK_TRUE;
  CK_ATTRIBUTE tmpl[] = {
      Attr(CKA_CLASS, &cls),   Attr(CKA_TOKEN, &yes),
      Attr(CKA_PRIVATE, &yes), Attr(CKA_APPLICATION, kApplication),
      Attr(CKA_LABEL, name),   Attr(CKA_VALUE, value),
  };
  CK_OBJECT_HANDLE created = CK_INVALID_HANDLE;
  absl::Status status =
      TS_P11(p11, C_CreateObject, lease.session(), tmpl, 6, &created);
  if (!status.ok()) {
    return WithRvOf(absl::Status(status.code(), Cat("PutData('", name, "'): ",
                                                    status.message())),
                    status);
  }
  for (CK_OBJECT_HANDLE handle : old) {
    status = TS_P11(p11, C_DestroyObject, lease.session(), handle);
    if (!status.ok() && !Vanished(status)) return status;
  }
  return absl::OkStatus();
}

Recovery::Policy DataStore::Policy(std::string_view op,
                                  std::string_view name) {
  Recovery::Policy policy;
  policy.op = op;
  policy.subject = name;
  return policy;
}

absl::Status DataStore::Put(std::string_view name, std::string_view value) {
  return Create(name, value, /*replace=*/true);
}

absl::Status DataStore::Add(std::string_view name, std::string_view value) {
  return Create(name, value, /*replace=*/false);
}

absl::Status DataStore::Remove(std::string_view name, std::string_view value) {
  if (absl::Status s = CheckName(name); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(*put_mu_);
  return recovery_.Run(
      Policy("RemoveData", name),
      [&](SessionPool::Lease& lease, uint64_t) -> absl::Status {
        const P11& p11 = pool_->p11();
        auto records = ReadRecords(p11, lease, name);
        if (!records.ok()) return records.status();
        for (const auto& [handle, got] : *records) {
          if (got != value) continue;
          absl::Status status =
              TS_P11(p11, C_DestroyObject, lease.session(), handle);
          if (!status.ok() && !Vanished(status)) return status;
        }
        return absl::OkStatus();
      });
}

absl::StatusOr<std::vector<std::string>> DataStore::GetAll(
    std::string_view name) {
  if (absl::Status s = CheckName(name); !s.ok()) return s;
  return recovery_.Run(
      Policy("GetData", name),
      [&](SessionPool::Lease& lease,
          uint64_t) -> absl::StatusOr<std::vector<std::string>> {
        auto records = ReadRecords(pool_->p11(), lease, name);
        if (!records.ok()) return records.status();
        std::vector<std::string> values;
        for (auto& [handle, value] : *records) {
          values.push_back(std::move(value));
        }
        return values;
      });
}

absl::StatusOr<int> DataStore::CountPublic(std::string_view name) {
  if (absl::Status s = CheckName(name); !s.ok()) return s;
  return recovery_.Run(
      Policy("CountPublicData", name),
      [&](SessionPool::Lease& lease, uint64_t) -> absl::StatusOr<int> {
        absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> found =
            FindByPrivacy(pool_->p11(), lease, name, /*private_=*/false);
        if (!found.ok()) return found.status();
        return static_cast<int>(found->size());
      });
}

absl::StatusOr<DataScan> DataStore::Scan(std::string_view prefix) {
  return recovery_.Run(
      Policy("ScanData", prefix),
      [&](SessionPool::Lease& lease, uint64_t) -> absl::StatusOr<DataScan> {
        const P11& p11 = pool_->p11();
        CK_OBJECT_CLASS cls = CKO_DATA;
        CK_BBOOL yes = CK_TRUE;
        absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> found = FindObjects(
            p11, lease.session(),
            {Attr(CKA_CLASS, &cls), Attr(CKA_TOKEN, &yes),
             Attr(CKA_APPLICATION, kApplication)});
        if (!found.ok()) return found.status();
        std::sort(found->begin(), found->end());
        DataScan scan;
        for (CK_OBJECT_HANDLE handle : *found) {
          // Read back, as FindRecords does: the template is not trusted.
          absl::StatusOr<std::string> label =
              GetAttribute(p11, lease.session(), handle, CKA_LABEL);
          absl::StatusOr<bool> priv =
              label.ok() ? GetBoolAttribute(p11, lease.session(), handle,
                                            CKA_PRIVATE)
                         : label.status();
          absl::StatusOr<bool> token =
              priv.ok() ? GetBoolAttribute(p11, lease.session(), handle,
                                           CKA_TOKEN)
                        : priv.status();
          if (!token.ok()) {
            if (Vanished(token.status())) continue;
            return token.status();
          }
          if (label->compare(0, prefix.size(), prefix) != 0) continue;
          if (!*priv || !*token) {
            ++scan.public_counts[*label];
            continue;
          }
          absl::StatusOr<std::string> value =
              GetAttribute(p11, lease.session(), handle, CKA_VALUE);
          if (!value.ok() && Vanished(value.status())) continue;
          if (!value.ok()) return value.status();
          scan.values[*label].push_back(*std::move(value));
        }
        return scan;
      });
}

absl::StatusOr<std::optional<std::string>> DataStore::Get(
    std::string_view name) {
  absl::StatusOr<std::vector<std::string>> all = GetAll(name);
  if (!all.ok()) return all.status();
  if (all->empty()) return std::optional<std::string>();
  return std::optional<std::string>(std::move(all->back()));
}

}  // namespace tokensign::hsm
