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

// Whether `handle` still is a private record named `name` (what a search for
// it would match, read back): false when it is gone or is something else now
// (a module may hand a destroyed object's handle to a new one).
absl::StatusOr<bool> IsRecordOf(const P11& p11, SessionPool::Lease& lease,
                                CK_OBJECT_HANDLE handle,
                                std::string_view name) {
  const CK_SESSION_HANDLE session = lease.session();
  absl::StatusOr<CK_ULONG> cls =
      GetUlongAttribute(p11, session, handle, CKA_CLASS);
  absl::StatusOr<bool> token =
      cls.ok() ? GetBoolAttribute(p11, session, handle, CKA_TOKEN)
               : cls.status();
  absl::StatusOr<bool> priv =
      token.ok() ? GetBoolAttribute(p11, session, handle, CKA_PRIVATE)
                 : token.status();
  absl::StatusOr<std::string> application =
      priv.ok() ? GetAttribute(p11, session, handle, CKA_APPLICATION)
                : priv.status();
  absl::StatusOr<std::string> label =
      application.ok() ? GetAttribute(p11, session, handle, CKA_LABEL)
                       : application.status();
  if (!label.ok()) {
    // Gone, or an object without these attributes: not that record.
    const CK_RV rv = RvOf(label.status());
    if (rv == CKR_OBJECT_HANDLE_INVALID || rv == CKR_ATTRIBUTE_TYPE_INVALID ||
        rv == CKR_ATTRIBUTE_SENSITIVE) {
      return false;
    }
    return label.status();
  }
  return *cls == CKO_DATA && *token && *priv &&
         *application == kApplication && *label == name;
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
  // Dropped before anything is created: if this call fails anywhere, the
  // next Put of the name searches (an Add's copy is one Put must remove).
  std::optional<Remembered> remembered = TakeRemembered(name);
  // Retried on a new session after a lost one: a record the lost reply did
  // create is one more copy, which readers tolerate (see the contract), and
  // Put's retry (a search: the remembered handle is used by the first run
  // only) destroys it with the other old copies.
  return recovery_.Run(Policy("PutData", name),
                       [&](SessionPool::Lease& lease, uint64_t epoch) {
                         return CreateOn(lease, epoch, name, value, replace,
                                         &remembered);
                       });
}

absl::Status DataStore::CreateOn(SessionPool::Lease& lease, uint64_t epoch,
                                 std::string_view name, std::string_view value,
                                 bool replace,
                                 std::optional<Remembered>* remembered) {
  const P11& p11 = pool_->p11();
  std::optional<Remembered> mine = std::exchange(*remembered, std::nullopt);
  std::vector<CK_OBJECT_HANDLE> old;
  if (replace) {
    bool known = false;
    if (mine.has_value() && mine->epoch == epoch) {
      absl::StatusOr<bool> still = IsRecordOf(p11, lease, mine->handle, name);
      if (!still.ok()) return still.status();
      if (*still) {
        old.push_back(mine->handle);
        known = true;
      }
    }
    if (!known) {
      absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> found =
          FindRecords(p11, lease, name);
      if (!found.ok()) return found.status();
      old = *std::move(found);
    }
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
  // Exactly one copy now (this process's view): the next Put destroys it by
  // handle. The caller holds *put_mu_.
  if (replace) {
    remembered_.insert_or_assign(std::string(name),
                                 Remembered{epoch, created});
  }
  return absl::OkStatus();
}

std::optional<DataStore::Remembered> DataStore::TakeRemembered(
    std::string_view name) {
  auto it = remembered_.find(name);
  if (it == remembered_.end()) return std::nullopt;
  Remembered out = it->second;
  remembered_.erase(it);
  return out;
}

CK_OBJECT_HANDLE DataStore::RememberedForTesting(std::string_view name) {
  std::lock_guard<std::mutex> lock(*put_mu_);
  auto it = remembered_.find(name);
  return it == remembered_.end() ? CK_INVALID_HANDLE : it->second.handle;
}

void DataStore::RememberForTesting(std::string_view name,
                                   CK_OBJECT_HANDLE handle) {
  std::lock_guard<std::mutex> lock(*put_mu_);
  remembered_.insert_or_assign(std::string(name),
                               Remembered{pool_->epoch(), handle});
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
  TakeRemembered(name);  // the next Put of the name searches
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
          // Read back, as FindRecords does: the template is not trusted. Two
          // C_GetAttributeValue calls per object (six before: ~5% of a
          // 1,000-issuer daemon start): CKA_PRIVATE, CKA_TOKEN and the
          // lengths of CKA_LABEL and CKA_VALUE, then the flags again with the
          // label and (of a private token object) the value. The second
          // call's flags decide; a value that grew in between (another writer's
          // C_SetAttributeValue) is CKR_BUFFER_TOO_SMALL: read it again.
          std::string label, value;
          CK_BBOOL priv = CK_FALSE, token = CK_FALSE;
          bool record = false, read = false, gone = false;
          for (int attempt = 0; !read; ++attempt) {
            CK_ATTRIBUTE sizes[] = {Attr(CKA_PRIVATE, &priv),
                                    Attr(CKA_TOKEN, &token),
                                    {CKA_LABEL, nullptr, 0},
                                    {CKA_VALUE, nullptr, 0}};
            absl::Status status = TS_P11(p11, C_GetAttributeValue,
                                         lease.session(), handle, sizes, 4);
            if (Vanished(status)) {
              gone = true;
              break;
            }
            if (!status.ok()) return status;
            const bool with_value = priv == CK_TRUE && token == CK_TRUE;
            label.assign(sizes[2].ulValueLen, '\0');
            value.assign(with_value ? sizes[3].ulValueLen : 0, '\0');
            CK_ATTRIBUTE values[] = {Attr(CKA_PRIVATE, &priv),
                                     Attr(CKA_TOKEN, &token),
                                     Attr(CKA_LABEL, label.data(), label.size()),
                                     Attr(CKA_VALUE, value.data(), value.size())};
            status = TS_P11(p11, C_GetAttributeValue, lease.session(), handle,
                            values, with_value ? 4 : 3);
            if (Vanished(status)) {
              gone = true;
              break;
            }
            record = priv == CK_TRUE && token == CK_TRUE;
            if (RvOf(status) == CKR_BUFFER_TOO_SMALL ||
                (status.ok() && record && !with_value)) {
              if (attempt < 3) continue;  // changed between the two calls
              return absl::AbortedError(
                  Cat("ScanData: data object ", handle,
                      " kept changing while it was read"));
            }
            if (!status.ok()) return status;
            label.resize(values[2].ulValueLen);
            if (with_value) value.resize(values[3].ulValueLen);
            read = true;
          }
          if (gone) continue;
          if (label.compare(0, prefix.size(), prefix) != 0) continue;
          if (!record) {
            ++scan.public_counts[label];
            continue;
          }
          scan.values[label].push_back(std::move(value));
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
