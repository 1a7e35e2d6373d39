// For the libstdc++ of GCC 6 and later (see symver.h): GCC 11's headers call
// std::__throw_bad_array_new_length, new in GLIBCXX_3.4.29, when an allocation
// is too large to count. The addon is built without exceptions, where
// libstdc++'s own __throw functions abort; so does this one, hidden in the addon.
#include <cstdlib>
#include <new>

namespace std {
void __throw_bad_array_new_length() { std::abort(); }
}  // namespace std
